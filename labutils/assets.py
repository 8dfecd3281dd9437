"""Downloaded assets (datasets, ImageNet weights): the registry, the offline cache, and what to do when one is missing.

Keras downloads into its cache, ``$KERAS_HOME`` (default ``~/.keras``), under
the file names and URLs of ``keras.applications`` and ``keras.datasets``. Offline,
``keras.utils.get_file`` fails at once with a bare "URL fetch failure"; the
helpers here turn that into a message that names the file, where to put it and
the command that fills the cache ahead of time::

    python -m labutils.assets status            # each asset: present/missing, size, path
    python -m labutils.assets fetch             # download what the full lab needs (hashes checked)
    python -m labutils.assets fetch --from DIR  # copy them from a folder instead (air-gapped machines)

``fetch`` writes the files exactly where Keras looks for them, so the unchanged
Keras calls in the notebooks find them and never download.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from labutils import atomic, config


class AssetMissingError(RuntimeError):
    """A dataset or weights file is neither cached nor downloadable."""


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file in Keras' cache: ``$KERAS_HOME/<subdir>/<filename>``, downloaded from ``origin``."""

    name: str  # what the command line calls it
    filename: str  # Keras' own file name: the cache is shared with plain Keras calls
    subdir: str  # "models" or "datasets"
    origin: str
    file_hash: str | None  # as Keras checks it: 64 hex digits SHA-256, 32 MD5; None where Keras publishes none
    approx_mb: float  # download size, for the status listing only
    what: str
    required: bool = True  # needed by the full lab, so fetched by default
    sha256: str | None = None  # computed here from a good copy, where Keras publishes no SHA-256

    @property
    def expected_hash(self) -> str:
        """What the file is checked against: our SHA-256 where we have one, else Keras' own hash."""
        return self.sha256 or self.file_hash

    @property
    def path(self) -> Path:
        return keras_home() / self.subdir / self.filename


_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications"
# File names, URLs and hashes as in keras/src/applications/{resnet,vgg16,mobilenet,imagenet_utils}.py
# (Keras 3.15); tests/test_assets.py checks them against the installed Keras.
ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("cifar10", "cifar-10-python.tar.gz", "datasets", config.CIFAR10_URL, config.CIFAR10_SHA256,
          170.5, "CIFAR-10, the official python-version archive: every notebook's data"),
    Asset("resnet50_notop", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "models",
          f"{_KERAS_APPS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
          "4d473c1dd8becc155b73f8504c6f6626", 94.8, "ResNet50 ImageNet weights without the top, for transfer learning"),
    Asset("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "models",
          f"{_KERAS_APPS}/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
          "64373286793e3c8b2b4e3219cbf3544b", 553.5, "VGG16 ImageNet weights with the top, for Grad-CAM"),
    # SHA-256 of the files below computed once from good copies (Keras publishes an MD5 for the
    # class index, none for the small MobileNets): a damaged file is caught by its hash.
    Asset("imagenet_class_index", "imagenet_class_index.json", "models",
          "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
          "c2c37ea517e94d9795004a39431a14cb", 0.035, "ImageNet class names for decode_predictions",
          sha256="a1e7a966a1f601d39e4b43e119b3e7dd4a2ad3ea08cf69847cbaf021013767bc"),
    Asset("mobilenet_025_128", "mobilenet_2_5_128_tf.h5", "models", f"{_KERAS_APPS}/mobilenet/mobilenet_2_5_128_tf.h5",
          None, 2.1, "MobileNet alpha 0.25 at 128x128 with the top, the smoke profile's Grad-CAM", required=False,
          sha256="8f5f6e7477e0d9b9bba8487c0507419dd62a8b2737af30423ea7ef872ebec4d8"),
    Asset("mobilenet_025_224_notop", "mobilenet_2_5_224_tf_no_top.h5", "models",
          f"{_KERAS_APPS}/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
          None, 2.1, "MobileNet alpha 0.25 without the top, smoke-sized transfer learning", required=False,
          sha256="dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"),
)}


def keras_home() -> Path:
    """Keras' cache folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` if home is read-only, as Keras does)."""
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"])
    home = Path.home()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def _fix(where: Path, origin: str | None) -> str:
    return (f"  Fix: run `python -m labutils.assets fetch` on a machine with internet"
            f" (or `python -m labutils.assets fetch --from DIR` with a folder holding it),\n"
            f"  or copy the file to {where}" + (f" (download it from {origin})" if origin else "")
            + f".\n  KERAS_HOME (now {keras_home()}) chooses the cache folder.")


def missing_message(filename: str, subdir: str, origin: str | None, reason: object) -> str:
    """A message naming the missing ``filename``, where it goes and how to fetch it."""
    known = next((a for a in ASSETS.values() if a.filename == filename), None)
    return (f"Asset {filename!r}" + (f" ({known.what})" if known else "")
            + f" is not in Keras' cache and could not be downloaded ({reason}).\n"
            + _fix(keras_home() / subdir / filename, origin))


@contextlib.contextmanager
def explain_missing(subdir: str = "models") -> Iterator[None]:
    """Re-raise Keras' offline download failure as an :class:`AssetMissingError`.

    Inside, sockets without a timeout of their own get ``config.DOWNLOAD_TIMEOUT_S``:
    Keras' download has none, so an unreachable (not refused) server would hang it.
    """
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(config.DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except AssetMissingError:
        raise
    except (TimeoutError, ConnectionError) as err:
        # Keras reports these bare, without the URL: name the registry's files not yet cached here.
        absent = [a.filename for a in ASSETS.values() if a.subdir == subdir and not a.path.is_file()]
        raise AssetMissingError(
            f"A download into {keras_home() / subdir} got no answer ({type(err).__name__}: {err}); "
            f"not cached there yet: {', '.join(absent) or 'nothing the lab registers'}.\n"
            + _fix(keras_home() / subdir / "<file>", None)) from err
    except Exception as err:  # Keras raises a plain Exception for a failed fetch
        match = re.search(r"URL fetch failure on (\S+?):? ", str(err))
        if not match:
            raise
        origin = match.group(1)
        raise AssetMissingError(missing_message(origin.rsplit("/", 1)[-1], subdir, origin, err)) from err
    finally:
        socket.setdefaulttimeout(previous)


def hash_matches(path: Path, file_hash: str) -> bool:
    """Whether ``path`` has ``file_hash``: SHA-256 for 64 hex digits, else MD5 (Keras' "auto" rule)."""
    digest = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == file_hash.lower()


def damaged_message(asset: Asset) -> str:
    """What to say about a cached file whose hash is wrong: which file, and how to get it again."""
    return (f"{asset.path} ({asset.what}) is damaged or truncated: its hash is not {asset.expected_hash}.\n"
            f"  Fix: delete it and run `python -m labutils.assets fetch {asset.name}` (or `... fetch "
            f"{asset.name} --from DIR` with a folder holding a good copy).")


def damaged(subdir: str = "models") -> list[Asset]:
    """The registry's files present in Keras' cache under ``subdir`` whose hash is wrong."""
    return [a for a in ASSETS.values() if a.subdir == subdir and a.path.is_file()
            and not hash_matches(a.path, a.expected_hash)]


def status(verify: bool = False) -> list[dict]:
    """One row per asset: name, path, present, size in bytes (None if missing), hash_ok, note.

    ``hash_ok`` is None unless ``verify`` and the file is present. CIFAR-10 counts as present,
    with a note, when ``LAB5_CIFAR10`` names a local copy (the one the notebooks use).
    """
    rows = []
    for asset in ASSETS.values():
        path, note = asset.path, ""
        if asset.name == "cifar10" and config.CIFAR10_SOURCE and "://" not in config.CIFAR10_SOURCE:
            path, note = Path(config.CIFAR10_SOURCE).expanduser(), "in use: LAB5_CIFAR10"
        present = path.is_file() or (bool(note) and path.is_dir())
        checkable = verify and present and path.is_file() and path == asset.path
        rows.append({"name": asset.name, "path": str(path), "present": present,
                     "size": path.stat().st_size if present and path.is_file() else None,
                     "hash_ok": hash_matches(path, asset.expected_hash) if checkable else None, "note": note,
                     "required": asset.required, "what": asset.what, "approx_mb": asset.approx_mb})
    return rows


def _install(asset: Asset, write) -> None:
    """Write the asset through ``write(file)`` to a temp file beside its place, check it, then rename."""
    with atomic.temporary(asset.path, suffix=".part") as tmp:
        with open(tmp, "wb") as f:
            write(f)
        if not hash_matches(tmp, asset.expected_hash):
            raise ValueError(f"{asset.filename}: hash mismatch (expected {asset.expected_hash}); file not installed")


def _download(asset: Asset, timeout: float) -> None:
    from tqdm.auto import tqdm

    with urllib.request.urlopen(asset.origin, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None

        def write(f):
            with tqdm(total=total, unit="B", unit_scale=True, desc=asset.filename, file=sys.stderr,
                      mininterval=2) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))

        _install(asset, write)


def _find_in(folder: Path, asset: Asset) -> Path | None:
    """``asset`` in ``folder``: laid out like a Keras cache (``models/``, ``datasets/``) or flat."""
    for candidate in (folder / asset.subdir / asset.filename, folder / asset.filename):
        if candidate.is_file():
            return candidate
    return None


def _copy_from(asset: Asset, folder: Path) -> None:
    source = _find_in(folder, asset)
    if source is None:
        raise FileNotFoundError(f"not in {folder} (looked for {folder / asset.subdir / asset.filename} "
                                f"and {folder / asset.filename})")

    def write(f):
        with open(source, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)

    _install(asset, write)


_DONE = ("present", "fetched", "copied")


def fetch(names: list[str] | None = None, source_dir: str | Path | None = None,
          timeout: float = config.DOWNLOAD_TIMEOUT_S) -> dict[str, str]:
    """Put the assets ``names`` (default: every required one) into Keras' cache.

    From ``source_dir`` when given (no network at all), else from their origins.
    A cached file whose hash matches is kept. Offline, the first failed connection
    ends the downloads (no point trying the others). Returns name -> outcome, one of
    "present", "fetched", "copied" or the error message; prints one line per asset.
    """
    chosen = [ASSETS[n] for n in names] if names else [a for a in ASSETS.values() if a.required]
    outcomes: dict[str, str] = {}
    offline: str | None = None
    for asset in chosen:
        if asset.path.is_file() and hash_matches(asset.path, asset.expected_hash):
            outcomes[asset.name] = "present"
        elif offline:
            outcomes[asset.name] = f"not tried: {offline}"
        else:
            try:
                if source_dir is not None:
                    _copy_from(asset, Path(source_dir))
                    outcomes[asset.name] = "copied"
                else:
                    _download(asset, timeout)
                    outcomes[asset.name] = "fetched"
            except (OSError, ValueError) as err:  # URLError and timeouts are OSErrors
                if source_dir is not None:
                    outcomes[asset.name] = str(err)
                else:
                    # A connection that fails (no DNS, refused, timed out) will fail for every asset;
                    # an HTTP error or a bad hash is this file's problem only.
                    if isinstance(err, (TimeoutError, ConnectionError)) or (
                            isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)):
                        offline = f"no network ({getattr(err, 'reason', err)})"
                    outcomes[asset.name] = missing_message(asset.filename, asset.subdir, asset.origin, err)
        shown = outcomes[asset.name]
        print(f"{asset.name:<24} {shown if shown in _DONE or shown.startswith('not tried') else 'failed (see below)'}",
              flush=True)
    return outcomes


def _size(row: dict) -> str:
    if row["size"] is None:
        return f"(~{row['approx_mb']:g} MB)"
    return f"{row['size'] / 1e6:.1f} MB" if row["size"] >= 1e5 else f"{row['size'] / 1e3:.1f} kB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labutils.assets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="list each asset: present/missing, size, path (exit 1 if a "
                                              "required one is missing)")
    show.add_argument("--verify", action="store_true", help="also check the hashes of present files")
    get = commands.add_parser("fetch", help="put assets into Keras' cache (default: everything the full lab needs)")
    get.add_argument("names", nargs="*", metavar="NAME",
                     help=f"only these assets ({', '.join(ASSETS)})")
    get.add_argument("--all", action="store_true", help="also the optional small-profile assets")
    get.add_argument("--from", dest="source_dir", metavar="DIR", type=Path,
                     help="copy from DIR (a Keras cache or a flat folder) instead of downloading")
    args = parser.parse_args(argv)

    print(f"KERAS_HOME: {keras_home()}")
    if args.command == "status":
        rows = status(verify=args.verify)
        for row in rows:
            state = "present" if row["present"] else "missing"
            if row["hash_ok"] is not None:
                state = "verified" if row["hash_ok"] else "BAD HASH"
            optional = "" if row["required"] else "  (optional)"
            note = f"  ({row['note']})" if row["note"] else ""
            print(f"{row['name']:<24} {state:<8} {_size(row):>12}  {row['path']}{optional}{note}")
            if row["hash_ok"] is False:
                print("  " + damaged_message(ASSETS[row["name"]]).replace("\n", "\n  "))
        return 0 if all(r["present"] and r["hash_ok"] is not False for r in rows if r["required"]) else 1

    if args.source_dir is not None and not args.source_dir.is_dir():
        parser.error(f"--from {args.source_dir}: no such folder")
    unknown = [n for n in args.names if n not in ASSETS]
    if unknown:
        parser.error(f"unknown asset {', '.join(unknown)}: choose from {', '.join(ASSETS)}")
    names = args.names or ([*ASSETS] if args.all else None)
    outcomes = fetch(names, args.source_dir)
    failed = {n: o for n, o in outcomes.items() if o not in _DONE}
    for name, outcome in failed.items():
        if not outcome.startswith("not tried"):
            print(f"\n{name}: {outcome}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
