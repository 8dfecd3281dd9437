"""Where a submission's code runs: a bubblewrap (``bwrap``) sandbox, or the plain machine.

With bwrap, each notebook's papermill child and its kernel see only: the system's
``/usr`` (read-only), a few files of ``/etc``, the Python installation and its
venv (read-only), the course's ``labutils`` (read-only), CIFAR-10 and the Keras
cache (read-only), the kernel spec the grader wrote (read-only), and two
writable folders: the student's private copy and a private scratch folder (HOME,
Jupyter's runtime dir, TMPDIR). No network, no other students' folders, no
grader outputs; its own PID namespace, so nothing it starts outlives it; all
capabilities dropped. bwrap is an existing, audited tool (Flatpak's sandbox):
nothing here is a sandbox of our own.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from grader.schema import Isolation

MODES = ("auto", "bwrap", "none")
INSTALL_HINT = "install it: apt-get install bubblewrap (Debian/Ubuntu), dnf install bubblewrap (Fedora)"
# /etc entries a Python/TensorFlow process needs; the rest of /etc (keys, shadow, ...) stays hidden.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
       "hosts", "ssl", "ca-certificates", "alternatives", "mime.types", "fonts", "matplotlibrc")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
# Namespaces and process settings: the grader's kill ends everything (its own PID namespace,
# --die-with-parent), no network, no terminal to inject keystrokes into (--new-session).
NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session", "--cap-drop", "ALL")


class SandboxError(RuntimeError):
    """``--sandbox bwrap`` asked for, but bwrap is missing or cannot run here."""


def container() -> str | None:
    """"a Kubernetes pod" / "a container" when this process runs in one, else None."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "a Kubernetes pod"
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return "a container"
    return None


def bwrap_problem() -> str | None:
    """Why bwrap cannot sandbox here (not installed, namespaces refused), or None when it works."""
    exe = shutil.which("bwrap")
    if exe is None:
        return f"bwrap is not installed ({INSTALL_HINT})"
    probe = [exe, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", *NAMESPACES, "true"]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap failed to start: {err}"
    if run.returncode != 0:
        return f"bwrap cannot create its namespaces here: {run.stderr.strip() or run.returncode}"
    return None


def choose(mode: str) -> Isolation:
    """The isolation for ``--sandbox mode``; ``bwrap`` raises SandboxError when bwrap does not work."""
    where = container()
    pod = (f" This grader runs inside {where}: that is the only boundary, so grade one submission per "
           f"container/pod (README, Kubernetes)." if where else "")
    if mode == "none":
        return Isolation("none", "NONE (--sandbox none): submissions ran UNISOLATED, with the grader's own "
                                 "rights: their code could read and change anything the grader can." + pod)
    problem = bwrap_problem()
    if problem is None:
        return Isolation("bwrap", "bwrap: each submission ran in a private copy, with no network, course code, "
                                  "Python and data read-only, other submissions and the grader's outputs "
                                  "invisible, in its own PID namespace (nothing it started outlived it).")
    if mode == "bwrap":
        raise SandboxError(f"--sandbox bwrap: {problem}")
    return Isolation("none", f"NONE: submissions ran UNISOLATED ({problem}); their code could read and change "
                             f"anything the grader can." + pod)


def _system_binds() -> list[str]:
    args = []
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), name]
        elif path.exists():
            args += ["--ro-bind", name, name]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def python_paths() -> list[Path]:
    """The Python installation and venv this grader runs on (read-only in the sandbox)."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(paths)


def wrap(argv: list[str], env: dict[str, str], *, writable: list[Path], readonly: list[Path],
         keras_cache: Path | None, cwd: Path, tmp_size: int | None = None) -> list[str]:
    """``argv`` run by bwrap with exactly ``env``; host paths keep their names inside.

    ``keras_cache`` (read-only) is bound entry by entry under the writable ``env["KERAS_HOME"]``:
    Keras falls back to ``/tmp/.keras`` (and a download) when its home is not writable.
    ``tmp_size``: the sandbox's own ``/tmp`` (a tmpfs) holds at most that many bytes (the disk limit).
    """
    size = ["--size", str(tmp_size)] if tmp_size else []
    args = ["bwrap", *_system_binds(), "--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/tmp"]
    for device in sorted(glob.glob("/dev/nvidia*")):  # a GPU node's devices (the minimal /dev has none)
        args += ["--dev-bind", device, device]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    for path in sorted({p.resolve() for p in readonly if p.exists()}):  # after: read-only inside a writable one too
        args += ["--ro-bind", str(path), str(path)]
    if keras_cache is not None and keras_cache.is_dir():
        home = Path(env["KERAS_HOME"])
        for entry in sorted(keras_cache.iterdir()):
            args += ["--ro-bind", str(entry.resolve()), str(home / entry.name)]
    args += [*NAMESPACES, "--chdir", str(cwd), "--clearenv"]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return [*args, "--", *argv]
