"""Downloaded assets (datasets, ImageNet weights) and what to do when one is missing.

Keras downloads into its cache, ``$KERAS_HOME`` (default ``~/.keras``). Offline,
``keras.utils.get_file`` fails at once with a bare "URL fetch failure"; the
helpers here turn that into a message that names the file, where to put it and
the command that fetches everything: ``python -m labutils.assets fetch``.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator


class AssetMissingError(RuntimeError):
    """A dataset or weights file is neither cached nor downloadable."""


def keras_home() -> Path:
    """Keras' cache folder: ``$KERAS_HOME`` or ``~/.keras``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def missing_message(filename: str, subdir: str, origin: str | None, reason: object) -> str:
    """A message naming the missing ``filename``, where it goes and how to fetch it."""
    where = keras_home() / subdir / filename
    return (f"Asset {filename!r} is not in Keras' cache and could not be downloaded"
            f" ({reason}).\n"
            f"  Fix: run `python -m labutils.assets fetch` on a machine with internet"
            f" (or `python -m labutils.assets fetch --from DIR` with a folder holding it),\n"
            f"  or copy the file to {where}"
            + (f" (download it from {origin})" if origin else "")
            + ".\n  KERAS_HOME (now "
            f"{keras_home()}) chooses the cache folder.")


@contextlib.contextmanager
def explain_missing(subdir: str = "models") -> Iterator[None]:
    """Re-raise Keras' offline download failure as an :class:`AssetMissingError`."""
    try:
        yield
    except AssetMissingError:
        raise
    except Exception as err:  # Keras raises a plain Exception for a failed fetch
        match = re.search(r"URL fetch failure on (\S+?):? ", str(err))
        if not match:
            raise
        origin = match.group(1)
        raise AssetMissingError(missing_message(origin.rsplit("/", 1)[-1], subdir, origin, err)) from err
