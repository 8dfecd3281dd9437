"""``python -m labutils.grade``: the options, the grading run, and its partial and final outputs."""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import labutils.grade
from labutils import assets, atomic, config
from labutils.grade import report, runner, sandbox
from labutils.grade.runner import say

# Written into every output folder: a later --submissions run over the same parent never grades it.
MARKER = ".lab5-grader-output"
NOT_STARTED = "not graded: the grader was stopped first"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
_PROBE = ("import json, keras, tensorflow as tf; print(json.dumps({'tensorflow': tf.__version__, "
          "'keras': keras.__version__, 'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))")


def parse_value(text: str):
    """A ``-p`` value: a number, true/false/null (or True/False/None), a JSON list or dict, else the string."""
    python_words = {"True": True, "False": False, "None": None}
    if text in python_words:
        return python_words[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def folder_name(student: str) -> str:
    """The output folder of ``student``: the name itself when plain, else a plain form plus a hash (unique)."""
    if SAFE_NAME.match(student):
        return student
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._-")[:40] or "student"
    return f"{plain}-{hashlib.sha256(student.encode(errors='surrogateescape')).hexdigest()[:8]}"


def submissions(folder: Path, out: Path | None) -> tuple[dict[str, Path], list[dict]]:
    """Student name -> their folder, and the entries not graded with why (symlinks, grader outputs).

    Every real sub-folder of ``folder`` is a student, whatever its name (``summary.json`` too);
    hidden ones are not.
    """
    students, not_graded = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            not_graded.append({"name": path.name, "reason": "a symlink, not followed (submit a folder)"})
        elif path.is_dir() and (path.resolve() == out or (path / MARKER).exists()):
            not_graded.append({"name": path.name, "reason": f"a grader output folder (holds {MARKER})"})
        elif path.is_dir():
            students[path.name] = path.resolve()
    return students, not_graded


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
            runner.kill_tree(probe)
    for package in ("tensorflow", "keras"):
        if package not in found:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[package] = importlib.metadata.version(package)
    return {"python": platform.python_version(), "tensorflow": found.get("tensorflow"),
            "keras": found.get("keras"), "gpus": found.get("gpus")}


def make_run(name: str, root: Path, folder: str, results: list[runner.NotebookResult], state: str,
             left_out: list[str] | None = None, assessed: list[dict] | None = None) -> dict:
    """One student's entry of the summary."""
    return {"name": name, "root": str(root), "folder": folder, "state": state,
            "passed": sum(r.status == "passed" for r in results),
            "all_passed": state == "graded" and bool(results) and all(r.status == "passed" for r in results),
            "notebooks": [dataclasses.asdict(r) for r in results], "left_out": left_out or [],
            "deliverables": assessed or []}  # labutils.grade.deliverables.assess: one entry per deliverable


class Outputs:
    """The summary and report, rewritten atomically whenever a notebook finishes (marked incomplete until the end)."""

    def __init__(self, out: Path, summary: dict, roots: dict[str, Path], folders: dict[str, str]):
        self.out, self.summary, self.roots, self.folders = out, summary, roots, folders
        self.runs: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def begin(self) -> None:
        """The first write: a previous run's summary never looks current while this one runs."""
        with self.lock:
            self._write()

    def update(self, name: str, run: dict) -> None:
        with self.lock:
            self.runs[name] = run
            done = sum(r["state"] != "running" for r in self.runs.values())
            self.summary["state"] = f"running: {done} of {len(self.roots)} graded so far"
            self._write()

    def finish(self, state: str, complete: bool, environment: dict) -> dict:
        """The last write; students never started are listed ``not graded``."""
        with self.lock:
            for name, root in self.roots.items():
                if name not in self.runs:
                    self.runs[name] = make_run(name, root, self.folders[name], [], NOT_STARTED)
            self.summary.update(state=state, complete=complete, environment=environment)
            if self.summary["submissions"] is not None:
                self.summary["class_figure"] = report.write_class_figure(self.summary, self.out)
            self._write()
            return self.summary

    def _write(self) -> None:
        runs = [self.runs[name] for name in self.roots if name in self.runs]
        self.summary.update(runs=runs, seconds=round(time.monotonic() - self.start, 1),
                            passed=self.summary["complete"] and all(r["all_passed"] for r in runs))
        atomic.write_text(self.out / "summary.json", json.dumps(self.summary, indent=1) + "\n")
        if self.summary["submissions"] is not None:
            text = report.render_combined(self.summary)
        else:
            text = report.render_run(self.summary, runs[0]) if runs else f"# Lab 5 grading report\n\n{self.summary['state']}\n"
        atomic.write_text(self.out / "report.md", text)

    def write_student(self, run: dict) -> None:
        """``students/<name>/summary.json`` and ``report.md`` (submissions only)."""
        with self.lock:
            single = {**self.summary, "runs": [run], "complete": run["state"] == "graded",
                      "passed": run["all_passed"], "state": run["state"]}
            atomic.write_text(self.out / run["folder"] / "summary.json", json.dumps(single, indent=1) + "\n")
            atomic.write_text(self.out / run["folder"] / "report.md", report.render_run(single, run))


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a cluster stopping the job) is handled like Ctrl-C


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    doc = labutils.grade.__doc__
    parser = argparse.ArgumentParser(prog="python -m labutils.grade", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=doc.split("\n\n", 1)[1])
    parser.add_argument("--profile", choices=sorted(config.PROFILES), default=config.profile().name,
                        help="passed to every notebook as the `profile` parameter (default: $LAB5_PROFILE or full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="another parameter for every notebook (VALUE read as a number, true/false/None or "
                             "JSON when it parses as one, else as a string)")
    parser.add_argument("--timeout", type=float, help="seconds per notebook, the whole notebook (default: "
                        + ", ".join(f"{k} {v:g}" for k, v in config.GRADE_TIMEOUT_S.items()) + ")")
    parser.add_argument("--out", type=Path, help=f"where executed notebooks and the report go (default: "
                        f"{config.GRADED_DIR} for one repository, DIR-graded beside --submissions DIR)")
    parser.add_argument("--submissions", type=Path, metavar="DIR",
                        help="grade every student folder in DIR (each a copy of this repository's layout)")
    parser.add_argument("--jobs", type=int, help="students graded at once (default: 2 CPU cores and "
                        "GRADE_JOB_MEMORY_GB of free memory each)")
    parser.add_argument("--sandbox", choices=sandbox.MODES, default="auto",
                        help="auto (default): bubblewrap where it works, else run unisolated and say so; "
                             "bwrap: fail unless bubblewrap works; none: no isolation")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["k8s"]:
        from labutils.grade import k8s
        return k8s.main(argv[1:])
    if argv[:1] == ["merge"]:
        from labutils.grade import merge
        return merge.main(argv[1:])
    parser, args = parse_args(argv)
    parameters = {name: parse_value(value) for name, value in args.parameter}
    if "profile" in parameters:
        parser.error("use --profile, not -p profile")
    timeout = args.timeout or config.GRADE_TIMEOUT_S[args.profile]
    if timeout <= 0 or (args.jobs is not None and args.jobs < 1):
        parser.error("--timeout and --jobs must be positive")
    if args.submissions is not None and not args.submissions.is_dir():
        parser.error(f"--submissions {args.submissions}: no such folder")
    try:
        isolation = sandbox.choose(args.sandbox)
    except sandbox.SandboxError as err:
        parser.error(str(err))
    if args.submissions:
        subs = args.submissions.resolve()
        out = (args.out or subs.parent / f"{subs.name}-graded").resolve()
        repos, not_graded = submissions(subs, out)
        folders = {name: f"students/{folder_name(name)}" for name in repos}
    else:
        out = (args.out or config.GRADED_DIR).resolve()
        repos, not_graded, folders = {config.ROOT.name: config.ROOT}, [], {config.ROOT.name: ""}
    if not repos:
        parser.error(f"{args.submissions} holds no student folders")
    if any(out == root / "notebooks" for root in repos.values()):
        parser.error(f"--out {out} is a notebooks folder: graded copies would overwrite the sources")
    cpus, _ = runner.machine()
    jobs = min(args.jobs or runner.default_jobs(args.profile), len(repos))
    threads = {}
    if jobs > 1:  # share the cores instead of every TensorFlow taking them all
        threads = {"TF_NUM_INTRAOP_THREADS": str(max(1, cpus // jobs)), "OMP_NUM_THREADS": str(max(1, cpus // jobs)),
                   "TF_NUM_INTEROP_THREADS": "2"}
    missing = [row["name"] for row in assets.status() if row["required"] and not row["present"]]
    if missing and args.profile == "full":
        say(f"warning: {', '.join(missing)} not in KERAS_HOME ({assets.keras_home()}); offline, the notebooks "
            f"needing them will fail. Fix: python -m labutils.assets fetch")
    settings = runner.Settings(profile=args.profile, parameters={"profile": args.profile, **parameters},
                               timeout=timeout, isolation=isolation, threads=threads, progress=jobs == 1)

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Written by python -m labutils.grade: never graded as a submission.\n")
    summary = {"profile": args.profile, "parameters": parameters, "timeout": timeout,
               "started": dt.datetime.now().isoformat(timespec="seconds"), "seconds": 0.0, "jobs": jobs, "cpus": cpus,
               "environment": _finish_probe(None), "keras_home": str(assets.keras_home()), "missing_assets": missing,
               "submissions": str(args.submissions.resolve()) if args.submissions else None, "out": str(out),
               "isolation": dataclasses.asdict(isolation), "complete": False, "state": "starting", "passed": False,
               "runs": [], "not_graded": not_graded}
    outputs = Outputs(out, summary, repos, folders)
    outputs.begin()
    say(f"grading {len(repos)} repositor{'y' if len(repos) == 1 else 'ies'} ({args.profile} profile, "
        f"timeout {timeout:g} s per notebook, {jobs} job(s)) into {out}")
    say(("isolation: " if isolation.mode == "bwrap" else "WARNING: isolation: ") + isolation.statement)
    for skipped in not_graded:
        say(f"{skipped['name']}: not graded: {skipped['reason']}")
    probe = _start_probe()
    scratch = Path(tempfile.mkdtemp(prefix="lab5-grade-"))

    def grade(name: str, root: Path) -> dict:
        folder = folders[name]
        label = f"{name}/" if args.submissions else ""

        def partial(results):
            outputs.update(name, make_run(name, root, folder, results, "running"))

        if runner.stopping.is_set():  # queued when Ctrl-C / SIGTERM came
            return make_run(name, root, folder, [], NOT_STARTED)
        try:
            results, left_out, assessed = runner.grade_repo(root, out / folder, scratch / folder_name(name), settings,
                                                            label=label, on_notebook=partial)
            interrupted = runner.stopping.is_set()
            run = make_run(name, root, folder, results, "interrupted" if interrupted else "graded", left_out, assessed)
            if not results and not interrupted:
                say(f"{name}: no notebooks/NN_*.ipynb found in {root}")
        except Exception as err:  # one broken submission (unreadable folder...) must not stop the others
            say(f"{name}: could not be graded: {type(err).__name__}: {err}")
            run = make_run(name, root, folder, [], f"not graded: {type(err).__name__}: {err}")
        if args.submissions:
            outputs.write_student(run)
        outputs.update(name, run)
        return run

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(grade, name, root) for name, root in repos.items()]
    interrupted = False
    try:
        concurrent.futures.wait(futures)
    except KeyboardInterrupt:
        interrupted = True
        for sig in previous:  # a second Ctrl-C must not cut the report short
            signal.signal(sig, signal.SIG_IGN)
        say("interrupted: stopping the running notebooks, then writing the report (marked incomplete)")
        runner.stop_all()
        if probe is not None:
            runner.kill_tree(probe)
            probe = None
    pool.shutdown(wait=True, cancel_futures=True)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    with contextlib.suppress(OSError):
        scratch.rmdir()

    state = ("interrupted (Ctrl-C or SIGTERM): the running notebook is marked interrupted, students not yet "
             "graded are listed as such" if interrupted else "complete")
    summary = outputs.finish(state, not interrupted, _finish_probe(probe))
    counts = [nb["status"] for run in summary["runs"] for nb in run["notebooks"]]
    tally = ", ".join(f"{counts.count(s)} {s}" for s in ("passed", "failed", "timed out", "interrupted", "skipped")
                      if s in counts)
    say(f"{'interrupted' if interrupted else 'done'} after {summary['seconds']:.1f} s: {tally or 'no notebooks'}; "
        f"report: {out / 'report.md'}")
    if isolation.mode != "bwrap":
        say("WARNING: " + isolation.statement)
    return 130 if interrupted else 0 if summary["passed"] else 1
