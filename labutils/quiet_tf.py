"""Keep TensorFlow's C++ start-up lines out of students' notebooks, and nothing else.

TensorFlow 2.21 prints its start-up lines ("oneDNN custom operations are on", "Could not find
cuda drivers", "failed call to cuInit", the CPU instruction notice) from C++ before its logging
is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. :func:`install` makes the first
``import tensorflow`` (by any labutils module, or by the notebook) run with standard error
captured, its first device query included, and then writes back every captured line except
those known start-up lines: Python warnings and errors still show.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
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


class _Imported(importlib.abc.Loader):
    """A loader for a module that is already imported."""

    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        pass


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the import below goes through the ordinary finders
        with start_up_lines_filtered():
            module = importlib.import_module("tensorflow")
            module.config.list_physical_devices()  # CUDA's lines come at the first device query
        return importlib.util.spec_from_loader(name, _Imported(module))


def install() -> None:
    """Filter the start-up lines of the first ``import tensorflow`` of this process (if not yet imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFirstImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFirstImport())
