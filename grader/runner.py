"""Running one submission's notebooks: a private copy, a papermill child per notebook, limits, clean-up.

Every course notebook (``course.NOTEBOOKS``) of the private copy runs in order, each
in a papermill child process of its own (``child.py``: a crash or a timeout ends that
notebook only), wrapped by the sandbox (``sandbox.wrap``) unless it is off, on a kernel
of this Python that imports the COURSE's ``labutils`` before any student code runs.
``LAB5_ROOT`` is the private copy, so the submission itself is never written to.
A notebook that needs another's outputs (``Notebook.needs``) is skipped when that
one did not pass in the same run and did not leave the files it saves for it (``Notebook.saves``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from grader import child, collect, evidence, limits, sandbox, settings
from grader.schema import Isolation, NotebookResult
from labutils import assets, atomic, config, course

KERNEL_NAME = "lab5-grader"
COURSE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the course's labutils
CHILD = Path(child.__file__).resolve()
# This Python by its venv's real path (the venv is bound read-only in the sandbox; links to it are not).
PYTHON = str(Path(sys.prefix).resolve() / "bin" / Path(sys.executable).name)
# Never copied into the private copy: the grader's own outputs, environments, version control.
NOT_COPIED = {settings.GRADED, ".venv", ".git", "__pycache__", ".ipynb_checkpoints"}
# Passed from the grader's environment to the notebooks (threads, GPUs); nothing else is.
PASSED_ENV = re.compile(r"^(TF_|OMP_|CUDA_|NVIDIA_|XLA_|LD_LIBRARY_PATH$|PYTHONHASHSEED$|LANG$|LC_)")

# The kernel imports the course's labutils (first on PYTHONPATH) before any cell runs, so a
# student's labutils/ in the notebooks folder (which IPython puts on sys.path) cannot replace it.
_KERNEL = "import labutils; from ipykernel import kernelapp; kernelapp.launch_new_instance()"

_print_lock = threading.Lock()
_live: set[subprocess.Popen] = set()
stopping = threading.Event()  # set on Ctrl-C / SIGTERM: running notebooks are killed, no new ones start
_bar_open = False  # the echoed output stopped mid-line (a progress bar cut short)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """One grading run's choices, the same for every student."""

    profile: str
    parameters: dict
    timeout: float
    isolation: Isolation
    threads: dict[str, str]  # thread limits when several students run at once
    progress: bool  # echo papermill's progress bar (one job only)
    # (``support`` first: in the class body the field ``limits`` would hide the module)
    support: limits.Support = limits.Support(cgroup_problem="not detected", tmpfs_problem="not detected")
    limits: limits.Limits | None = None  # each student's memory, processes and disk (None: not limited)


def say(text: str) -> None:
    """A progress line with the time of day (on a line of its own, even after a cut-off progress bar)."""
    global _bar_open
    with _print_lock:
        if _bar_open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            _bar_open = False
        print(f"[{dt.datetime.now():%H:%M:%S}] {text}", flush=True)


def discover(root: Path) -> tuple[list[tuple[course.Notebook, Path | None]], list[str]]:
    """The course's notebooks (``course.NOTEBOOKS``) in ``root/notebooks``, and the others there.

    The course decides what is graded: each course notebook comes with its path, or ``None`` when the
    submission lacks it (not a regular file in a real folder: nothing is followed). The second list
    names the submission's other ``.ipynb`` files (renamed or extra): listed, never run.
    """
    folder = root / config.NOTEBOOKS_DIR.relative_to(config.ROOT)
    present = {}
    if folder.is_dir() and not folder.is_symlink():
        present = {p.name: p for p in folder.iterdir() if p.suffix == ".ipynb" and stat.S_ISREG(p.lstat().st_mode)}
    names = {nb.name for nb in course.NOTEBOOKS}
    return [(nb, present.get(nb.name)) for nb in course.NOTEBOOKS], sorted(set(present) - names)


def copy_submission(source: Path, target: Path, top: bool = True) -> list[str]:
    """Copy folders and regular files of ``source`` to ``target``; returns what was left out (symlinks, FIFOs...)."""
    left_out = []
    target.mkdir(parents=True)
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if entry.name in NOT_COPIED if top else entry.name in ("__pycache__", ".ipynb_checkpoints"):
            continue
        kind = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(kind):
            left_out += [f"{entry.name}/{name}" for name in copy_submission(Path(entry.path), target / entry.name, False)]
        elif stat.S_ISREG(kind):
            shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)
        else:
            left_out.append(entry.name)
    return left_out


def write_kernel_spec(folder: Path) -> Path:
    """A kernelspec for this Python under ``folder/kernels``; returns ``folder`` (for ``JUPYTER_PATH``)."""
    spec = folder / "kernels" / KERNEL_NAME / "kernel.json"
    atomic.write_text(spec, json.dumps({"argv": [PYTHON, "-c", _KERNEL, "-f", "{connection_file}"],
                                        "display_name": f"Python {platform.python_version()} (grader)",
                                        "language": "python", "metadata": {"debugger": False}}, indent=1))
    return folder


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (bwrap's PID namespace ends with it, daemons included)."""
    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=10)
    proc.wait()


def stop_all() -> None:
    """Ctrl-C / SIGTERM: no new notebook starts, running ones are killed (their students say "interrupted")."""
    stopping.set()
    for proc in list(_live):
        kill_tree(proc)


LOG_TAIL = 1_000_000  # bytes of the end of a child's output always kept in its log


def _pump(stream, log_path: Path, echo: bool) -> None:
    """Copy the child's output to its log and, when ``echo``, to our stderr. The log keeps at most
    ``collect.OUTPUT_CAP`` bytes: the start, then the last ``LOG_TAIL`` bytes, where a crash's traceback is."""
    global _bar_open
    kept = dropped = 0
    tail = bytearray()  # what came after the log was full: its last LOG_TAIL bytes
    with open(log_path, "ab") as log:
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = collect.OUTPUT_CAP - LOG_TAIL - kept
            part = chunk[:max(room, 0)]
            if len(part) < len(chunk):  # keep reading: a blocked pipe would stall the child
                tail += chunk[len(part):]
                dropped += max(0, len(tail) - LOG_TAIL)
                del tail[:-LOG_TAIL]
            if not part:
                continue
            log.write(part)
            log.flush()
            kept += len(part)
            if echo:
                with _print_lock:
                    sys.stderr.buffer.write(part)
                    sys.stderr.buffer.flush()
                    _bar_open = not part.endswith(b"\n")
        if dropped:
            log.write(f"\n[log truncated by the grader at {collect.OUTPUT_CAP:,} bytes: {dropped:,} bytes "
                      f"discarded here; its last {LOG_TAIL:,} bytes follow]\n".encode())
        log.write(tail)


@dataclasses.dataclass(frozen=True)
class Workspace:
    """A student's private copy (``root``, the notebooks' LAB5_ROOT), scratch folder (HOME, TMPDIR, kernel spec)
    and ``reserved`` folder: papermill's executed notebook and the kernel's runtime files, in a tmpfs of its own
    when the disk is limited, so that a student who filled the disk does not stop the grader's files."""

    root: Path
    scratch: Path
    reserved: Path

    def environment(self, options: RunSettings) -> dict[str, str]:
        """Exactly the variables a notebook sees (nothing else of the grader's environment leaks in)."""
        s = self.scratch
        env = {name: value for name, value in os.environ.items() if PASSED_ENV.match(name)}
        env.update(options.threads)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.update({
            "PATH": os.pathsep.join([str(Path(PYTHON).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(s / "home"), "TMPDIR": str(s / "tmp"), "JUPYTER_PATH": str(s / "spec"),
            "JUPYTER_RUNTIME_DIR": str(self.reserved / "runtime"), "JUPYTER_CONFIG_DIR": str(s / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(s / "jupyter-data"), "IPYTHONDIR": str(self.reserved / "ipython"),
            "MPLCONFIGDIR": str(s / "matplotlib"),
            # Figures go into the executed notebook, as in JupyterLab: the grader reads the curves and heatmaps.
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONPATH": str(COURSE_ROOT), "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "LAB5_ROOT": str(self.root), "LAB5_PROFILE": options.profile,
            # bwrap: a writable home over the read-only cache (sandbox.wrap); else the grader's own
            "KERAS_HOME": str(s / "keras") if options.isolation.mode == "bwrap" else str(assets.keras_home()),
        })
        if config.CIFAR10_SOURCE:
            # The real path: the sandbox binds the target of a symlink, not the link.
            local = "://" not in config.CIFAR10_SOURCE
            env["LAB5_CIFAR10"] = str(Path(config.CIFAR10_SOURCE).resolve()) if local else config.CIFAR10_SOURCE
        return env

    def command(self, argv: list[str], options: RunSettings) -> tuple[list[str], dict[str, str]]:
        """``(argv, env)`` for Popen: sandboxed with bwrap, or as is."""
        env = self.environment(options)
        if options.isolation.mode != "bwrap":
            return argv, env
        readonly = [*sandbox.python_paths(), COURSE_ROOT / "labutils", CHILD, self.scratch / "spec"]
        if config.CIFAR10_SOURCE and "://" not in config.CIFAR10_SOURCE:
            readonly.append(Path(config.CIFAR10_SOURCE))
        disk = options.limits is not None and not (options.support.pod or options.support.tmpfs_problem)
        wrapped = sandbox.wrap(argv, env, writable=[self.root, self.scratch, self.reserved], readonly=readonly,
                               keras_cache=assets.keras_home(), cwd=self.root,
                               tmp_size=int(options.limits.disk_gb * limits.GB) if disk else None)
        return wrapped, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _execute(source: Path, executed: Path, log: Path, ws: Workspace, options: RunSettings,
             student: limits.StudentLimits) -> tuple[int | None, bool]:
    """Run the papermill child on ``source`` in the student's limits; returns its exit code and whether it timed out.

    Whatever the child started is killed when it ends, timed out or not (in its process tree or its control group).
    """
    args = {"input": str(source), "output": str(executed), "parameters": options.parameters,
            "kernel": KERNEL_NAME, "cwd": str(source.parent), "progress": options.progress,
            "output_cap": collect.OUTPUT_CAP}
    argv, env = ws.command([PYTHON, str(CHILD), json.dumps(args)], options)
    argv = student.wrap(argv)
    # a session of its own: the terminal's Ctrl-C reaches the grader only, which then stops this
    proc = subprocess.Popen(argv, cwd=ws.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    _live.add(proc)
    if stopping.is_set():  # Ctrl-C arrived while this one was starting
        kill_tree(proc)
    pump = threading.Thread(target=_pump, args=(proc.stdout, log, options.progress), daemon=True)
    pump.start()
    timed_out = False
    try:
        proc.wait(timeout=options.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        kill_tree(proc)  # also when it exited: whatever it left running goes with it
        student.kill_all()  # and whatever left the tree (a daemon without bwrap's PID namespace)
        _live.discard(proc)
        pump.join(timeout=10)
    return proc.returncode, timed_out


def _keep_output(result: NotebookResult, executed: Path, source: Path, output: Path, log: Path) -> dict | None:
    """Copy the executed notebook (bounded) beside the report; returns it parsed (None when unreadable)."""
    nb, kept, note = collect.read_notebook(executed, source)
    if kept is not None:
        atomic.write_bytes(output, kept)
    else:
        with contextlib.suppress(FileNotFoundError):
            output.unlink()  # an older run's notebook would pass for this one's
        result.output = None
    result.notes = [n for n in (note,) if n and executed.exists()]
    dropped = child.DROPPED.format(cap=collect.OUTPUT_CAP)
    if nb is not None and any(out.get("text") == dropped for cell in nb.get("cells", [])
                              for out in cell.get("outputs", [])):
        result.notes.append(f"outputs past {collect.OUTPUT_CAP:,} bytes dropped while it ran")
    if log.stat().st_size > collect.OUTPUT_CAP:
        result.notes.append(f"log truncated at {collect.OUTPUT_CAP:,} bytes")
    return nb


def _verdict(result: NotebookResult, nb: dict | None, code: int | None, timed_out: bool, log: Path,
             timeout: float) -> None:
    """Set ``result``'s status and, when it did not pass, where and why."""
    if stopping.is_set() and not timed_out:
        result.status = "interrupted"  # killed by the grader's Ctrl-C / SIGTERM, whatever its exit code says
        result.cell = collect.locate(nb, "running").get("cell")
        result.message = "the grader was stopped (Ctrl-C or SIGTERM) while this notebook ran"
    elif timed_out:
        result.status = "timed out"
        result.cell = collect.locate(nb, "running").get("cell")
        result.message = f"still running after {timeout:g} s" + (f" (in cell {result.cell})" if result.cell else "")
    elif code == 0:
        result.status = "passed"
    else:
        where = collect.locate(nb, "error")
        result.cell, result.execution_count = where.get("cell"), where.get("execution_count")
        result.error, result.message = where.get("error"), where.get("message")
        if result.error is None:  # papermill itself or the kernel failed (dead kernel, unreadable notebook...)
            result.error, result.message = collect.last_error_line(log)
            if result.error is None:  # killed (a signal) or a crash without a Python error: say only that
                result.message = f"the notebook's papermill process exited with status {code} (see its log)"
            result.cell = result.cell or collect.locate(nb, "last").get("cell")


def _limit_verdict(result: NotebookResult, student: limits.StudentLimits, before: dict[str, int], log: Path) -> None:
    """A failed notebook stopped by one of the student's limits says which, e.g. "out of memory (limit 6 GB)"."""
    if result.status != "failed":
        return
    result.limit = student.verdict(before, f"{result.message or ''}\n{collect.log_tail(log)}")
    if result.limit:
        result.message = f"{result.limit}: {result.message}" if result.message else result.limit


def run_notebook(source: Path, out_dir: Path, ws: Workspace, options: RunSettings, label: str,
                 student: limits.StudentLimits) -> NotebookResult:
    """Execute ``source`` (in the private copy) into ``out_dir/<name>``; kill it all after the timeout."""
    output, executed = out_dir / source.name, ws.reserved / "executed" / source.name
    log = out_dir / "logs" / f"{source.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    results_dir = ws.root / config.RESULTS_DIR.relative_to(config.ROOT)
    before = collect.snapshot(results_dir)
    result = NotebookResult(source.name, "failed", started=dt.datetime.now().isoformat(timespec="seconds"),
                            output=str(output.relative_to(out_dir)), log=str(log.relative_to(out_dir)))
    say(f"{label}{source.name}: started")
    start, counters = time.monotonic(), student.counters()
    code, timed_out = _execute(source, executed, log, ws, options, student)
    result.seconds = round(time.monotonic() - start, 1)
    result.ended = dt.datetime.now().isoformat(timespec="seconds")
    nb = _keep_output(result, executed, source, output, log)
    with contextlib.suppress(OSError):
        executed.unlink()  # kept beside the report: the reserved folder has room for the next one
    _verdict(result, nb, code, timed_out, log, options.timeout)
    _limit_verdict(result, student, counters, log)
    result.results, result.metrics = collect.notebook_results(results_dir, before, ws.root, source.stem,
                                                              options.profile)
    where = f" at cell {result.cell}" if result.cell and result.status != "passed" else ""
    what = f": {result.limit or result.error}" if result.limit or result.error else ""
    say(f"{label}{source.name}: {result.status}{where}{what} in {result.seconds:.1f} s")
    return result


def _saved(needed: course.Notebook, root: Path) -> bool:
    """Whether a notebook that did not pass still left what the notebooks needing it read (``Notebook.saves``)."""
    return bool(needed.saves) and all((root / name).is_file() for name in needed.saves)


def _prepare(submission: Path, ws: Workspace) -> list[str]:
    """The private copy and scratch folders of one student; returns what was not copied."""
    left_out = copy_submission(submission, ws.root)
    for name in ("home", "tmp", "keras", "matplotlib"):
        (ws.scratch / name).mkdir(parents=True, exist_ok=True)
    for name in ("runtime", "executed", "ipython"):
        (ws.reserved / name).mkdir(parents=True, exist_ok=True)
    write_kernel_spec(ws.scratch / "spec")  # one per student: nobody's edits reach the next kernel
    return left_out


def grade_repo(submission: Path, out_dir: Path, work: Path, options: RunSettings, label: str = "",
               on_notebook=None) -> tuple[list[NotebookResult], list[str], list]:
    """Every notebook of a private copy of ``submission`` (made in ``work``, removed after), in order,
    within the student's limits (``options.limits``: its control groups, ``work`` a tmpfs; removed after).

    Returns the results, the entries not copied (symlinks, FIFOs...) and what the grader assessed
    (:func:`grader.evidence.assess`: deliverables, exercises, discussions; None when interrupted);
    ``on_notebook(results)`` is called after each notebook (the grader rewrites its partial report).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ws = Workspace(work / "repo", work / "scratch", work / "reserved")
    student = limits.StudentLimits(options.support, options.limits, work, reserved=ws.reserved)
    try:
        student.start()
        left_out = _prepare(submission, ws)
        done: dict[str, str] = {}  # "01" -> status
        results: list[NotebookResult] = []
        found, others = discover(ws.root)
        for nb, source in found:
            if stopping.is_set():
                break
            unmet = [need for need in nb.needs if need in done and done[need] != "passed"
                     and not _saved(course.notebook(need), ws.root)]
            if source is None:
                result = NotebookResult(nb.name, "missing", reason="not in the submission's notebooks/")
                say(f"{label}{nb.name}: missing")
            elif unmet:
                result = NotebookResult(nb.name, "skipped", reason=f"needs {', '.join(unmet)}")
                say(f"{label}{nb.name}: skipped: {result.reason}")
            else:
                result = run_notebook(source, out_dir, ws, options, label, student)
            if result.status in ("missing", "skipped"):
                with contextlib.suppress(FileNotFoundError):
                    (out_dir / nb.name).unlink()  # an older run's executed copy would pass for this one's
            done[nb.number] = result.status
            results.append(result)
            if on_notebook is not None:
                on_notebook(results)
        left_out += [f"notebooks/{name} (not a course notebook: listed, not run)" for name in others]
        assessed = None if stopping.is_set() else evidence.assess(ws.root, out_dir, results, options.profile)
        return results, left_out, assessed
    finally:
        student.stop()  # its processes killed, its tmpfs (and every file in it) unmounted, its groups removed
        shutil.rmtree(work, ignore_errors=True)


def _cgroup_limit(name: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path("/sys/fs/cgroup", name).read_text().split()[0]
    return None


def machine() -> tuple[int, float]:
    """CPU cores and GB of memory this process may use (container limits included)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = (Path("/sys/fs/cgroup/cpu.max").read_text().split() if Path("/sys/fs/cgroup/cpu.max").exists()
             else ["max"])
    if quota[0] != "max":
        cpus = min(cpus, max(1, int(quota[0]) // int(quota[1])))
    memory = psutil.virtual_memory().available
    limit = _cgroup_limit("memory.max")
    if limit and limit != "max":
        memory = min(memory, int(limit) - int(_cgroup_limit("memory.current") or 0))
    return cpus, memory / 1e9


def default_jobs(profile: str, job_memory_gb: float | None = None) -> int:
    """Students graded at once: ``settings.JOB_CPUS`` cores and ``job_memory_gb`` (default
    ``settings.JOB_MEMORY_GB``; a student's memory and tmpfs disk) of free memory each."""
    cpus, memory_gb = machine()
    job_memory_gb = job_memory_gb or settings.JOB_MEMORY_GB[profile]
    return max(1, min(cpus // settings.JOB_CPUS, int(memory_gb // job_memory_gb)))
