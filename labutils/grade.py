"""Run the lab's notebooks headlessly with papermill and write a report: ``python -m labutils.grade``.

One repository (this one, or ``$LAB5_ROOT``)::

    python -m labutils.grade --profile smoke            # graded/NN_*.ipynb, graded/summary.json, graded/report.md
    python -m labutils.grade -p epochs_head 3 --timeout 7200

Many students, each folder of ``DIR`` a copy of this repository's layout::

    python -m labutils.grade --submissions DIR --jobs 4

Every ``notebooks/NN_*.ipynb`` runs in numbered order, each in a papermill
child process of its own (so a crash or a timeout ends that notebook only), on
a kernel that runs this very Python (``sys.executable``), in the student's
``notebooks/`` folder with ``LAB5_ROOT`` set to the student's copy (their own
``records/`` and ``img_out/``). ``--profile`` and every ``-p name value`` reach
each notebook's ``parameters`` cell. A notebook that needs another's outputs
(``config.NOTEBOOK_NEEDS``) is skipped when that one did not pass. The exit
status is 0 only if every notebook passed.

Written to ``--out`` (default ``graded/``): the executed notebooks, ``logs/``
(each child's output), ``summary.json`` and ``report.md``; with
``--submissions``, the same per student in ``graded/<student>/`` plus a combined
student x notebook ``report.md``. Time limit (``--timeout``): per notebook, the
whole notebook, default ``config.GRADE_TIMEOUT_S``. Students graded at once
(``--jobs``): by default as many as have 2 CPU cores and
``config.GRADE_JOB_MEMORY_GB`` of free memory each (container limits included).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil

from labutils import assets, atomic, config

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")
KERNEL_NAME = "lab5-grader"
KEY_METRICS = ("roc_auc", "pr_auc", "f1", "test_examples")
# Cells papermill adds to its output notebook; they are not counted in "cell N".
INSERTED_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
CELL_ERROR_EXIT = 3

# What each child process runs (python -c: it imports papermill only, no labutils of anyone's).
# A cell error exits quietly with CELL_ERROR_EXIT, the output notebook saying where and why;
# any other failure (dead kernel, unreadable notebook) leaves its traceback in the log.
# The kernel talks over Unix sockets in the user's private runtime folder, not over
# unencrypted localhost TCP that other users of a shared grading machine could listen to.
_CHILD = f"""
import json, os, sys
import papermill
from papermill.exceptions import PapermillExecutionError
from traitlets.config import Config
a = json.loads(sys.argv[1])
try:
    papermill.execute_notebook(a["input"], a["output"], parameters=a["parameters"], kernel_name=a["kernel"],
                               cwd=a["cwd"], progress_bar=a["progress"],
                               config=Config(KernelManager={{"transport": "ipc" if os.name == "posix" else "tcp"}}))
except PapermillExecutionError:
    sys.exit({CELL_ERROR_EXIT})
"""
_PROBE = ("import json, keras, tensorflow as tf; print(json.dumps({'tensorflow': tf.__version__, "
          "'keras': keras.__version__, 'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))")

_print_lock = threading.Lock()
_live: set[subprocess.Popen] = set()
_stopping = threading.Event()
_bar_open = False  # the echoed output stopped mid-line (a progress bar cut short)


@dataclasses.dataclass
class NotebookResult:
    """What happened to one notebook; ``cell`` counts the source notebook's cells from 1, markdown included."""

    notebook: str
    status: str  # "passed" | "failed" | "timed out" | "skipped"
    seconds: float = 0.0
    started: str | None = None
    ended: str | None = None
    reason: str | None = None  # why skipped, e.g. "needs 01"
    cell: int | None = None
    execution_count: int | None = None
    error: str | None = None  # exception name
    message: str | None = None
    output: str | None = None  # executed notebook, relative to the report
    log: str | None = None
    results: list[str] = dataclasses.field(default_factory=list)  # records/results files it wrote
    metrics: list[dict] = dataclasses.field(default_factory=list)


def say(text: str) -> None:
    """A progress line with the time of day (on a line of its own, even after a cut-off progress bar)."""
    global _bar_open
    with _print_lock:
        if _bar_open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            _bar_open = False
        print(f"[{dt.datetime.now():%H:%M:%S}] {text}", flush=True)




def discover(root: Path) -> list[Path]:
    """``root/notebooks/NN_*.ipynb`` in numbered order."""
    folder = root / config.NOTEBOOKS_DIR.relative_to(config.ROOT)
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def install_kernel(folder: Path) -> dict[str, str]:
    """A kernelspec for ``sys.executable`` under ``folder``; returns the env entries that make Jupyter find it.

    Kept beside the report rather than in ``sys.prefix``: it works in read-only
    environments and leaves the user's Jupyter setup untouched.
    """
    spec = folder / "kernels" / KERNEL_NAME / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(spec, json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                   "display_name": f"Python {platform.python_version()} (grader)",
                                   "language": "python", "metadata": {"debugger": False}}, indent=1))
    return {"JUPYTER_PATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))}


def parse_value(text: str):
    """A ``-p`` value: a number, true/false/null (or True/False/None), a JSON list or dict, else the string."""
    python_words = {"True": True, "False": False, "None": None}
    if text in python_words:
        return python_words[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def key_metrics(doc, source: str) -> list[dict]:
    """Rows of the key metrics (``KEY_METRICS``) found anywhere in a results document.

    A dict with ``roc_auc``/``pr_auc``/``f1`` (itself or in its ``metrics`` dict)
    makes a row labelled by its key path (``models`` and ``metrics`` left out, so
    ``{"models": {"ram": {"metrics": {...}}}}`` gives model "ram"), at the top by
    its ``backbone`` or ``model`` name if it has one (not when it has ``models``:
    then its own metrics repeat one of theirs);
    ``test_examples`` and ``profile`` are inherited from enclosing dicts.
    """
    rows: list[dict] = []

    def walk(node, path: list[str], inherited: dict) -> None:
        if not isinstance(node, dict):
            return
        own = {k: node[k] for k in KEY_METRICS if _number(node.get(k))}
        if isinstance(node.get("metrics"), dict):
            own.update({k: node["metrics"][k] for k in KEY_METRICS if _number(node["metrics"].get(k))})
        if isinstance(node.get("profile"), str):
            own["profile"] = node["profile"]
        context = {**inherited, **{k: v for k, v in own.items() if k in ("test_examples", "profile")}}
        # A document with per-model results repeats one of them at its top: list the models only.
        if any(k in own for k in ("roc_auc", "pr_auc", "f1")) and not isinstance(node.get("models"), dict):
            named = next((node[k] for k in ("backbone", "model") if isinstance(node.get(k), str)), None)
            rows.append({"source": source, "model": "/".join(path) or named, **context, **own})
        for key, child in node.items():
            if key != "metrics":
                walk(child, path if key == "models" else [*path, key], context)

    walk(doc, [], {})
    return rows


def _snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of the JSON files in ``folder``: what a notebook changed shows against it."""
    stamps = {}
    for path in folder.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):  # replaced or removed while we look
            stat = path.stat()
            stamps[path] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def collect_results(folder: Path, before: dict[Path, tuple[int, int]], root: Path) -> tuple[list[str], list[dict]]:
    """The results files written since ``before`` (so this notebook's, not a previous run's) and their metrics."""
    files, rows = [], []
    for path, stamp in sorted(_snapshot(folder).items()):
        if before.get(path) == stamp:
            continue
        name = str(path.relative_to(root))
        files.append(name)
        try:
            rows += key_metrics(json.loads(path.read_text()), path.name)
        except (OSError, ValueError) as err:  # a half-written or hand-edited file must not stop the grading
            rows.append({"source": path.name, "unreadable": f"{type(err).__name__}: {err}"})
    return files, rows


def locate(nb_path: Path, want: str) -> dict:
    """A cell of an executed notebook: the first that raised (``want="error"``), the one running
    (``"running"``), or the last one started (``"last"``: where a dying kernel stopped).
    """
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # missing or cut short by a kill: nothing to point at
        return {}
    position, found = 0, {}
    for cell in nb.cells:
        if INSERTED_TAGS & set(cell.metadata.get("tags", [])):
            continue
        position += 1
        papermill = cell.metadata.get("papermill", {})
        if want == "running" and papermill.get("status") == "running":
            return {"cell": position}
        if want == "last" and papermill.get("start_time"):  # papermill marks even unstarted cells "completed"
            found = {"cell": position}
        if want == "error":
            for out in cell.get("outputs", []):
                # papermill treats a bare sys.exit() / sys.exit(0) as success; so do we
                if out.get("output_type") == "error" and not (out.get("ename") == "SystemExit"
                                                               and out.get("evalue") in ("", "0")):
                    return {"cell": position, "execution_count": cell.get("execution_count"),
                            "error": out.get("ename"), "message": out.get("evalue")}
            if papermill.get("exception"):
                return {"cell": position, "execution_count": cell.get("execution_count")}
    return found


def _last_error_line(log: Path) -> tuple[str | None, str | None]:
    """``(name, message)`` of the last "SomeError: message" line of a child's log (papermill or kernel failure)."""
    try:
        text = log.read_bytes()[-20000:].decode(errors="replace")
    except OSError:
        return None, None
    for line in reversed(text.splitlines()):
        match = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s*(.*))?$", line.strip())
        if match:
            return match.group(1).rsplit(".", 1)[-1], match.group(2) or ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return None, lines[-1].strip() if lines else None


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (the kernel runs in a session of its own, so no process group)."""
    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=10)
    proc.wait()


def _pump(stream, log_path: Path, echo: bool) -> None:
    """Copy the child's output to its log file and, when ``echo``, to our stderr (papermill's progress bar)."""
    global _bar_open
    with open(log_path, "ab") as log:
        for chunk in iter(lambda: stream.read1(65536), b""):
            log.write(chunk)
            log.flush()
            if echo:
                with _print_lock:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.buffer.flush()
                    _bar_open = not chunk.endswith(b"\n")


def run_notebook(source: Path, out_dir: Path, *, root: Path, parameters: dict, timeout: float,
                 env: dict[str, str], progress: bool, label: str) -> NotebookResult:
    """Execute ``source`` into ``out_dir/<name>`` in a child process; kill it all after ``timeout`` seconds."""
    output = out_dir / source.name
    running = out_dir / f".{source.stem}.running.ipynb"
    log = out_dir / "logs" / f"{source.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    results_dir = root / config.RESULTS_DIR.relative_to(config.ROOT)
    before = _snapshot(results_dir)
    args = {"input": str(source), "output": str(running), "parameters": parameters, "kernel": KERNEL_NAME,
            "cwd": str(source.parent), "progress": progress}
    result = NotebookResult(source.name, "failed", started=dt.datetime.now().isoformat(timespec="seconds"),
                            output=str(output.relative_to(out_dir)), log=str(log.relative_to(out_dir)))
    say(f"{label}{source.name}: started")
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=root, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _live.add(proc)
    if _stopping.is_set():  # Ctrl-C arrived while this one was starting
        kill_tree(proc)
    pump = threading.Thread(target=_pump, args=(proc.stdout, log, progress), daemon=True)
    pump.start()
    try:
        proc.wait(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        timed_out = True
    finally:
        if proc.poll() is None:  # interrupted: leave no kernel behind
            kill_tree(proc)
        _live.discard(proc)
        pump.join(timeout=10)
    result.seconds = round(time.monotonic() - start, 1)
    result.ended = dt.datetime.now().isoformat(timespec="seconds")
    if running.exists():
        os.replace(running, output)
    elif output.exists():
        output.unlink()  # an older run's notebook would pass for this one's

    if timed_out:
        result.status = "timed out"
        result.cell = locate(output, "running").get("cell")
        result.message = f"still running after {timeout:g} s" + (f" (in cell {result.cell})" if result.cell else "")
    elif proc.returncode == 0:
        result.status = "passed"
    else:
        where = locate(output, "error")
        result.cell, result.execution_count = where.get("cell"), where.get("execution_count")
        result.error, result.message = where.get("error"), where.get("message")
        if result.error is None:  # papermill itself or the kernel failed (dead kernel, unreadable notebook...)
            result.error, result.message = _last_error_line(log)
            result.cell = result.cell or locate(output, "last").get("cell")
    result.results, result.metrics = collect_results(results_dir, before, root)
    where = f" at cell {result.cell}" if result.cell and result.status != "passed" else ""
    what = f": {result.error}" if result.error else ""
    say(f"{label}{source.name}: {result.status}{where}{what} in {result.seconds:.1f} s")
    return result


def grade_repo(root: Path, out_dir: Path, *, parameters: dict, timeout: float, env: dict[str, str],
               progress: bool, label: str = "") -> list[NotebookResult]:
    """Every notebook of ``root``, in order; a notebook whose needed ones did not pass is skipped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = discover(root)
    if any(out_dir.resolve() == nb.parent.resolve() for nb in notebooks):
        raise ValueError(f"--out {out_dir} is the notebooks folder: graded copies would overwrite the sources")
    env = {**env, "LAB5_ROOT": str(root),
           # the student's labutils first; the course's for whatever their copy lacks
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), str(Path(__file__).resolve().parents[1]),
                                                       env.get("PYTHONPATH")]))}
    done: dict[str, str] = {}  # "01" -> status
    results = []
    for source in notebooks:
        number = NOTEBOOK_PATTERN.match(source.name).group(1)
        if _stopping.is_set():
            break
        unmet = [need for need in config.NOTEBOOK_NEEDS.get(number, ()) if need in done and done[need] != "passed"]
        if unmet:
            result = NotebookResult(source.name, "skipped", reason=f"needs {', '.join(unmet)}")
            with contextlib.suppress(FileNotFoundError):
                (out_dir / source.name).unlink()
            say(f"{label}{source.name}: skipped: {result.reason}")
        else:
            result = run_notebook(source, out_dir, root=root, parameters=parameters, timeout=timeout,
                                  env=env, progress=progress, label=label)
        done[number] = result.status
        results.append(result)
    return results


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


def default_jobs(profile: str) -> int:
    """Students graded at once: 2 CPU cores and ``config.GRADE_JOB_MEMORY_GB`` of free memory for each."""
    cpus, memory_gb = machine()
    return max(1, min(cpus // 2, int(memory_gb // config.GRADE_JOB_MEMORY_GB[profile])))


def _start_probe() -> subprocess.Popen | None:
    """TensorFlow's and Keras' versions and the GPUs TensorFlow sees, asked in the background (importing TF takes seconds)."""
    try:
        return subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, text=True,
                                preexec_fn=lambda: os.nice(10))
    except OSError:
        return None


def _finish_probe(probe: subprocess.Popen | None) -> dict:
    found = {}
    if probe is not None:
        try:
            found = json.loads(probe.communicate(timeout=300)[0].strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            kill_tree(probe)
    for package in ("tensorflow", "keras"):
        if package not in found:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[package] = importlib.metadata.version(package)
    return {"python": platform.python_version(), "tensorflow": found.get("tensorflow"),
            "keras": found.get("keras"), "gpus": found.get("gpus")}


# ---- report ----------------------------------------------------------------------------------------------

def _cell(text) -> str:
    """Markdown-table-safe text."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _status_text(nb: dict) -> str:
    if nb["status"] == "skipped":
        return f"skipped: {nb['reason']}"
    if nb["status"] in ("failed", "timed out") and nb.get("cell"):
        return f"{nb['status']} at cell {nb['cell']}"
    return nb["status"]


def _metric_text(row: dict) -> str:
    if "unreadable" in row:
        return f"{row['source']}: unreadable"
    names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "f1": "F1", "test_examples": "n"}
    parts = [f"{names[k]} {_fmt(row[k])}" for k in KEY_METRICS if k in row]
    return f"{row.get('model') or Path(row['source']).stem}: " + ", ".join(parts)


def _environment_lines(summary: dict) -> list[str]:
    env = summary["environment"]
    gpus = env.get("gpus")
    gpu = "unknown" if gpus is None else (", ".join(gpus) if gpus else "none (CPU only)")
    params = ", ".join(f"{k}={v!r}" for k, v in summary["parameters"].items()) or "none"
    lines = [f"- Profile: **{summary['profile']}** (parameters: {params}; timeout {summary['timeout']:g} s per notebook)",
             f"- Python {env['python']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}; GPU: {gpu}",
             f"- Started {summary['started']}, {summary['seconds']:.1f} s in all; "
             f"{summary['jobs']} job(s) on {summary['cpus']} CPU core(s)"]
    if summary["missing_assets"]:
        lines.append(f"- Keras cache `{summary['keras_home']}` lacks {', '.join(summary['missing_assets'])} "
                     f"(`python -m labutils.assets fetch`)")
    return lines


def _problems(name: str, notebooks: list[dict]) -> list[str]:
    lines = []
    for nb in notebooks:
        if nb["status"] in ("failed", "timed out"):
            count = f" (In [{nb['execution_count']}])" if nb.get("execution_count") else ""
            lines += [f"### {name}{nb['notebook']}: {_status_text(nb)}{count}", "",
                      "```", f"{nb.get('error') or nb['status']}: {nb.get('message') or ''}"[:4000], "```", "",
                      f"Executed notebook: `{name}{nb['output']}`; log: `{name}{nb['log']}`", ""]
    return lines


def render_run(summary: dict, run: dict) -> str:
    """The report of one repository: a row per notebook (and per model of a notebook with several)."""
    lines = [f"# Lab 5 grading report: {run['name']}", "", *_environment_lines(summary),
             f"- Repository: `{run['root']}`; {run['passed']} of {len(run['notebooks'])} notebooks passed", "",
             "| Notebook | Status | Seconds | Model | Cat ROC-AUC | PR-AUC | F1 | Test examples |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for nb in run["notebooks"]:
        rows = nb["metrics"] or [{}]
        for row in rows:
            model = row.get("model") or (Path(row["source"]).stem if row else "")
            values = ("unreadable", "", "", "") if "unreadable" in row else [_fmt(row.get(k)) for k in KEY_METRICS]
            lines.append(f"| {nb['notebook']} | {_cell(_status_text(nb))} | {nb['seconds']:.1f} | {_cell(model)} | "
                         + " | ".join(values) + " |")
    problems = _problems("", run["notebooks"])
    return "\n".join(lines + (["", "## Failures", "", *problems] if problems else [])) + "\n"


def render_combined(summary: dict) -> str:
    """The report of many submissions: a student x notebook table of statuses and metrics."""
    columns = sorted({nb["notebook"] for run in summary["runs"] for nb in run["notebooks"]})
    passed = sum(run["passed"] == len(run["notebooks"]) and run["notebooks"] != [] for run in summary["runs"])
    lines = [f"# Lab 5 grading report: {len(summary['runs'])} submissions", "", *_environment_lines(summary),
             f"- Submissions: `{summary['submissions']}`; {passed} of {len(summary['runs'])} passed every notebook", "",
             "| Student | " + " | ".join(columns) + " | Passed |", "|---|" + "---|" * len(columns) + "---:|"]
    for run in summary["runs"]:
        by_name = {nb["notebook"]: nb for nb in run["notebooks"]}
        cells = []
        for column in columns:
            nb = by_name.get(column)
            if nb is None:
                cells.append("missing")
                continue
            text = [_status_text(nb) + (f" ({nb['seconds']:.0f} s)" if nb["status"] != "skipped" else "")]
            cells.append("<br>".join(_cell(t) for t in text + [_metric_text(r) for r in nb["metrics"]]))
        total = f"{run['passed']}/{len(columns)}" if run["notebooks"] else f"0/{len(columns)} (no notebooks)"
        lines.append(f"| {_cell(run['name'])} | " + " | ".join(cells) + f" | {total} |")
    problems = [line for run in summary["runs"] for line in _problems(f"{run['name']}/", run["notebooks"])]
    return "\n".join(lines + (["", "## Failures", "", *problems] if problems else [])) + "\n"


def _run_summary(name: str, root: Path, results: list[NotebookResult]) -> dict:
    notebooks = [dataclasses.asdict(r) for r in results]
    return {"name": name, "root": str(root), "passed": sum(r.status == "passed" for r in results),
            "all_passed": bool(results) and all(r.status == "passed" for r in results), "notebooks": notebooks}


def submissions(folder: Path) -> dict[str, Path]:
    """Student name -> their copy: every sub-folder of ``folder`` (a folder without notebooks/ grades as empty)."""
    return {p.name: p.resolve() for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # a cluster stopping the job: clean up the children as for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labutils.grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--profile", choices=sorted(config.PROFILES), default=config.PROFILE_NAME,
                        help="passed to every notebook as the `profile` parameter (default: $LAB5_PROFILE or full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="another parameter for every notebook (VALUE read as a number, true/false/None or "
                             "JSON when it parses as one, else as a string)")
    parser.add_argument("--timeout", type=float, help="seconds per notebook, the whole notebook (default: "
                        + ", ".join(f"{k} {v:g}" for k, v in config.GRADE_TIMEOUT_S.items()) + ")")
    parser.add_argument("--out", type=Path, default=config.GRADED_DIR,
                        help=f"where executed notebooks and the report go (default: {config.GRADED_DIR})")
    parser.add_argument("--submissions", type=Path, metavar="DIR",
                        help="grade every student folder in DIR (each a copy of this repository's layout)")
    parser.add_argument("--jobs", type=int, help="students graded at once (default: 2 CPU cores and "
                        "GRADE_JOB_MEMORY_GB of free memory each)")
    args = parser.parse_args(argv)

    parameters = {name: parse_value(value) for name, value in args.parameter}
    if "profile" in parameters:
        parser.error("use --profile, not -p profile")
    timeout = args.timeout or config.GRADE_TIMEOUT_S[args.profile]
    if timeout <= 0 or (args.jobs is not None and args.jobs < 1):
        parser.error("--timeout and --jobs must be positive")
    if args.submissions is not None and not args.submissions.is_dir():
        parser.error(f"--submissions {args.submissions}: no such folder")
    repos = submissions(args.submissions) if args.submissions else {config.ROOT.name: config.ROOT}
    if not repos:
        parser.error(f"{args.submissions} holds no student folders")
    out = args.out.resolve()
    cpus, _ = machine()
    jobs = min(args.jobs or default_jobs(args.profile), len(repos))

    env = {**os.environ, **install_kernel(out / ".jupyter"), "LAB5_PROFILE": args.profile}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if jobs > 1:  # share the cores instead of every TensorFlow taking them all
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(name, str(max(1, cpus // jobs)))
        env.setdefault("TF_NUM_INTEROP_THREADS", "2")
    missing = [row["name"] for row in assets.status() if row["required"] and not row["present"]]
    if missing and args.profile == "full":
        say(f"warning: {', '.join(missing)} not in KERAS_HOME ({assets.keras_home()}); offline, the notebooks "
            f"needing them will fail. Fix: python -m labutils.assets fetch")
    parameters = {"profile": args.profile, **parameters}
    started, start = dt.datetime.now().isoformat(timespec="seconds"), time.monotonic()
    say(f"grading {len(repos)} repositor{'y' if len(repos) == 1 else 'ies'} ({args.profile} profile, "
        f"timeout {timeout:g} s per notebook, {jobs} job(s)) into {out}")
    probe = _start_probe()
    signal.signal(signal.SIGTERM, _on_sigterm)

    def grade(name: str, root: Path) -> dict:
        target = out if args.submissions is None else out / name
        label = "" if args.submissions is None else f"{name}/"
        try:
            results = grade_repo(root, target, parameters=parameters, timeout=timeout, env=env,
                                 progress=jobs == 1, label=label)
        except Exception as err:  # one broken submission (unreadable folder...) must not stop the others
            say(f"{name}: could not be graded: {type(err).__name__}: {err}")
            results = []
        if not results:
            say(f"{name}: no notebooks/NN_*.ipynb found in {root}")
        return _run_summary(name, root, results)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        runs = [f.result() for f in [pool.submit(grade, name, root) for name, root in repos.items()]]
    except KeyboardInterrupt:
        _stopping.set()
        for proc in [*_live, *([probe] if probe else [])]:
            kill_tree(proc)
        pool.shutdown(wait=True, cancel_futures=True)
        say("interrupted: running notebooks stopped, no report written")
        return 130
    pool.shutdown()

    summary = {"profile": args.profile, "parameters": {k: v for k, v in parameters.items() if k != "profile"},
               "timeout": timeout, "started": started, "seconds": round(time.monotonic() - start, 1),
               "jobs": jobs, "cpus": cpus, "environment": _finish_probe(probe), "keras_home": str(assets.keras_home()), "missing_assets": missing,
               "submissions": str(args.submissions.resolve()) if args.submissions else None,
               "passed": all(run["all_passed"] for run in runs), "runs": runs}
    if args.submissions is None:
        atomic.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        atomic.write_text(out / "report.md", render_run(summary, runs[0]))
    else:
        for run in runs:
            atomic.write_text(out / run["name"] / "summary.json", json.dumps({**summary, "runs": [run]}, indent=1) + "\n")
            atomic.write_text(out / run["name"] / "report.md", render_run(summary, run))
        atomic.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        atomic.write_text(out / "report.md", render_combined(summary))
    counts = [nb["status"] for run in runs for nb in run["notebooks"]]
    tally = ", ".join(f"{counts.count(s)} {s}" for s in ("passed", "failed", "timed out", "skipped") if s in counts)
    say(f"done in {summary['seconds']:.1f} s: {tally or 'no notebooks'}; report: {out / 'report.md'}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
