"""Keep TensorFlow's C++ start-up lines out of students' notebooks, and nothing else.

TensorFlow 2.21 prints its start-up lines ("oneDNN custom operations are on", "Could not find
cuda drivers", "failed call to cuInit", the CPU instruction notice) from C++ before its logging
is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. :func:`import_tensorflow`,
called by a notebook before anything imports TensorFlow (``import keras`` does), imports it with
standard error captured, its first device query included, and then writes back every captured
line except those known start-up lines: Python warnings and errors still show.

Importing this module changes nothing: only :func:`import_tensorflow` does.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
from types import ModuleType
from typing import Iterator

# The start-up lines, and only them (each as printed, from its first character).
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_executor|gpu_device)\.cc:\d+\] .*"
    r"|E\d{4} [\d:. ]+\d+ cuda_(platform|executor|diagnostics)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*, in other operations, rebuild TensorFlow .*)$")


@contextlib.contextmanager
def start_up_lines_filtered() -> Iterator[None]:
    """Standard error (the file descriptor, where C++ writes) captured, then written back without NOISE."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an unusual host): leave everything as it is
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not NOISE.match(line.rstrip("\n"))]
            if kept:
                os.write(2, "".join(kept).encode())


def import_tensorflow() -> ModuleType:
    """Import TensorFlow without its C++ start-up lines, and return it.

    Call it before ``import keras`` or ``import tensorflow``: once TensorFlow is imported, its
    lines are printed and this changes nothing. It also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless
    already set, which hides TensorFlow's later C++ INFO and WARNING lines (such as
    "TFRecordDataset `buffer_size` is unspecified"); its C++ errors, and every Python warning
    and error, still show.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    # Read by TensorFlow's C++ logging when it first logs, during the import below.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with start_up_lines_filtered():
        tensorflow = importlib.import_module("tensorflow")
        tensorflow.config.list_physical_devices()  # CUDA's lines come at the first device query
    return tensorflow
