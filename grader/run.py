"""``python -m grader run``: grade one repository or a class of them, with partial and final outputs."""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader import finalize, limits, report, runner, sandbox, settings, students
from grader.runner import say
from grader.schema import Environment, Isolation, Run, Summary
from labutils import assets, atomic, config

NOT_STARTED = "not graded: the grader was stopped first"
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


def _start_probe() -> subprocess.Popen | None:
    """TensorFlow's and Keras' versions and the GPUs TensorFlow sees, asked in the background (importing TF takes seconds)."""
    try:
        return subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, text=True,
                                preexec_fn=_background)
    except OSError:
        return None


def _background() -> None:
    """The probe's ``preexec_fn``: low CPU priority, and among the OOM killer's first choices (not the grader's -1000)."""
    os.nice(10)
    limits.raise_oom_score()


def _finish_probe(probe: subprocess.Popen | None) -> Environment:
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
    return Environment(platform.python_version(), found.get("tensorflow"), found.get("keras"), found.get("gpus"))


class Outputs:
    """The summary and report, rewritten atomically whenever a notebook finishes (marked incomplete until the end)."""

    def __init__(self, out: Path, summary: Summary, roots: dict[str, Path], folders: dict[str, str]):
        self.out, self.summary, self.roots, self.folders = out, summary, roots, folders
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def begin(self) -> None:
        """The first write: a previous run's summary never looks current while this one runs."""
        with self.lock:
            self._write()

    def update(self, run: Run) -> None:
        with self.lock:
            self.runs[run.name] = run
            done = sum(r.state != "running" for r in self.runs.values())
            self.summary.state = f"running: {done} of {len(self.roots)} graded so far"
            self._write()

    def finish(self, state: str, complete: bool, environment: Environment) -> Summary:
        """The last write; students never started are listed ``not graded``."""
        with self.lock:
            for name, root in self.roots.items():
                if name not in self.runs:
                    self.runs[name] = Run(name, str(root), self.folders[name], NOT_STARTED)
            self.summary.state, self.summary.complete, self.summary.environment = state, complete, environment
            if self.summary.submissions is not None:
                self.summary.class_figure = report.write_class_figure(self._current(), self.out)
            self._write()
            finalize.write_class(self.summary, self.out)
            return self.summary

    def _current(self) -> Summary:
        self.summary.runs = [self.runs[name] for name in self.roots if name in self.runs]
        self.summary.seconds = round(time.monotonic() - self.start, 1)
        return self.summary

    def _write(self) -> None:
        summary = self._current()
        atomic.write_text(self.out / "summary.json", summary.to_json())
        if summary.submissions is not None:
            text = report.render_combined(summary)
        elif summary.runs:
            text = report.render_run(summary, summary.runs[0])
        else:
            text = f"# Lab 5 grading report\n\n{summary.state}\n"
        atomic.write_text(self.out / "report.md", text)

    def write_student(self, run: Run) -> None:
        """``students/<name>/summary.json`` and ``report.md`` (submissions only)."""
        with self.lock:
            single = dataclasses.replace(self.summary, runs=[run], complete=run.state == "graded", state=run.state)
            atomic.write_text(self.out / run.folder / "summary.json", single.to_json())
            atomic.write_text(self.out / run.folder / "report.md", report.render_run(single, run))


@dataclasses.dataclass
class Plan:
    """What one ``run`` grades and where its outputs go."""

    out: Path
    repos: dict[str, Path]  # student (or the repository's name) -> folder
    folders: dict[str, str]  # student -> outputs folder, relative to out
    not_graded: list[dict]
    options: runner.RunSettings
    jobs: int  # students graded at once


def _class(args) -> tuple[Path, dict[str, Path], dict[str, str], list[dict]]:
    """The output folder, the repositories to grade, their output folders and the entries not graded."""
    if args.submissions:
        subs = args.submissions.resolve()
        out = (args.out or subs.parent / f"{subs.name}-graded").resolve()
        repos, not_graded = students.submissions(subs, out)
        return out, repos, {name: students.output_folder(name) for name in repos}, not_graded
    out = (args.out or config.ROOT / settings.GRADED).resolve()
    return out, {config.ROOT.name: config.ROOT}, {config.ROOT.name: ""}, []


def _limits(args, error) -> tuple[limits.Limits | None, limits.Support]:
    """Each student's limits (options, else the profile's settings; None with ``--no-limits``) and what this
    machine can apply of them; ``--require-limits`` exits (``error``) when one cannot be applied."""
    if args.no_limits:
        if args.require_limits or args.pod_limits:
            error("--no-limits goes with neither --require-limits nor --pod-limits")
        off = "--no-limits"
        return None, limits.Support(cgroup_problem=off, tmpfs_problem=off)
    wanted = limits.Limits(args.memory_gb or settings.JOB_MEMORY_GB[args.profile],
                           args.max_processes or settings.MAX_PROCESSES[args.profile],
                           args.disk_gb or settings.DISK_GB[args.profile], settings.RESERVED_MB)
    if min(wanted.memory_gb, wanted.max_processes, wanted.disk_gb) <= 0:
        error("--memory-gb, --max-processes and --disk-gb must be positive")
    support = limits.detect(Path(tempfile.gettempdir()), pod=args.pod_limits)
    if args.require_limits and support.missing():
        limits.release(support)
        error(f"--require-limits: no {', '.join(support.missing())} limit here: "
              + "; ".join(filter(None, (support.cgroup_problem, support.tmpfs_problem))))
    return wanted, support


def plan(args, error) -> Plan:
    """Check the options (``error(message)`` exits) and decide what is graded, how and where."""
    parameters = {name: parse_value(value) for name, value in args.parameter}
    if "profile" in parameters:
        error("use --profile, not -p profile")
    timeout = args.timeout or settings.TIMEOUT_S[args.profile]
    if timeout <= 0 or (args.jobs is not None and args.jobs < 1):
        error("--timeout and --jobs must be positive")
    if args.submissions is not None and not args.submissions.is_dir():
        error(f"--submissions {args.submissions}: no such folder")
    try:
        isolation = sandbox.choose(args.sandbox)
    except sandbox.SandboxError as err:
        error(str(err))
    wanted, support = _limits(args, error)
    isolation = dataclasses.replace(isolation, limits=limits.describe(wanted, support),
                                    missing_limits=support.missing())
    out, repos, folders, not_graded = _class(args)
    if not repos:
        error(f"{args.submissions} holds no student folders")
    if any(out == root / "notebooks" for root in repos.values()):
        error(f"--out {out} is a notebooks folder: graded copies would overwrite the sources")
    cpus, _ = runner.machine()
    in_memory = (wanted.in_memory_gb(not (support.tmpfs_problem or support.pod)) if wanted
                 else settings.JOB_MEMORY_GB[args.profile])
    jobs = min(args.jobs or runner.default_jobs(args.profile, in_memory), len(repos))
    threads = {}
    if jobs > 1:  # share the cores instead of every TensorFlow taking them all
        share = str(max(1, cpus // jobs))
        threads = {"TF_NUM_INTRAOP_THREADS": share, "OMP_NUM_THREADS": share, "TF_NUM_INTEROP_THREADS": "2"}
    options = runner.RunSettings(profile=args.profile, parameters={"profile": args.profile, **parameters},
                                 timeout=timeout, isolation=isolation, threads=threads, progress=jobs == 1,
                                 support=support, limits=wanted)
    return Plan(out, repos, folders, not_graded, options, jobs)


def _summary(args, p: Plan, missing: list[str]) -> Summary:
    return Summary(profile=args.profile, profile_reason=args.profile_reason,
                   parameters={k: v for k, v in p.options.parameters.items() if k != "profile"},
                   timeout=p.options.timeout, isolation=p.options.isolation, environment=_finish_probe(None),
                   started=dt.datetime.now().isoformat(timespec="seconds"), jobs=p.jobs, cpus=runner.machine()[0],
                   keras_home=str(assets.keras_home()), missing_assets=missing,
                   submissions=str(args.submissions.resolve()) if args.submissions else None, out=str(p.out),
                   not_graded=p.not_graded)


def _grade_one(name: str, p: Plan, outputs: Outputs, scratch: Path, label: str) -> Run:
    """One student's notebooks; any failure of the grader's own (unreadable folder...) is this student's row."""
    root, folder = p.repos[name], p.folders[name]
    if runner.stopping.is_set():  # queued when Ctrl-C / SIGTERM came
        return Run(name, str(root), folder, NOT_STARTED)
    try:
        results, left_out, assessed = runner.grade_repo(
            root, p.out / folder, scratch / students.folder_name(name), p.options, label=label,
            on_notebook=lambda done: outputs.update(Run(name, str(root), folder, "running", list(done))))
        interrupted = runner.stopping.is_set()
        if not results and not interrupted:
            say(f"{name}: no course notebooks found in {root}")
        run = Run(name, str(root), folder, "interrupted" if interrupted else "graded", results, left_out)
        if assessed is not None:
            run.deliverables, run.exercises, run.discussions = (assessed.deliverables, assessed.exercises,
                                                                assessed.discussions)
        return run
    except Exception as err:  # one broken submission must not stop the others
        say(f"{name}: could not be graded: {type(err).__name__}: {err}")
        return Run(name, str(root), folder, f"not graded: {type(err).__name__}: {err}")


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a cluster stopping the job) is handled like Ctrl-C


def _grade_all(args, p: Plan, outputs: Outputs, jobs: int) -> bool:
    """Grade every repository, ``jobs`` at a time; returns whether Ctrl-C or SIGTERM stopped it."""
    scratch = Path(tempfile.mkdtemp(prefix="lab5-grade-"))

    def grade(name: str) -> None:
        run = _grade_one(name, p, outputs, scratch, f"{name}/" if args.submissions else "")
        if args.submissions:
            outputs.write_student(run)
        outputs.update(run)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(grade, name) for name in p.repos]
    interrupted = False
    try:
        concurrent.futures.wait(futures)
    except KeyboardInterrupt:
        interrupted = True
        for sig in previous:  # a second Ctrl-C must not cut the report short
            signal.signal(sig, signal.SIG_IGN)
        say("interrupted: stopping the running notebooks, then writing the report (marked incomplete)")
        runner.stop_all()
    pool.shutdown(wait=True, cancel_futures=True)
    limits.cleanup()  # every student's groups and tmpfs, whatever stopped its grading
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    with contextlib.suppress(OSError):
        scratch.rmdir()
    return interrupted


def _check_output_room(out: Path, students_count: int) -> None:
    """Warn when the outputs' disk has less free space than ``settings.OUTPUT_RESERVE_MB`` per student."""
    want = settings.OUTPUT_RESERVE_MB * 1e6 * students_count
    free = shutil.disk_usage(out).free
    if free < want:
        say(f"WARNING: {free / 1e6:.0f} MB free for the grader's outputs in {out}, under the "
            f"{want / 1e6:.0f} MB it keeps for {students_count} student(s): the report may be cut short")


def _say_limits(isolation: Isolation) -> None:
    """The limits line on the terminal: a WARNING when some cannot be applied here."""
    say(("WARNING: limits: " if isolation.missing_limits else "limits: ") + isolation.limits)


def main(args, error) -> int:
    """Grade as ``args`` say; the exit status is 0 only if every notebook passed (130 when interrupted)."""
    say(f"profile {args.profile}: {args.profile_reason}")
    p = plan(args, error)
    try:
        return _main(args, p)
    finally:
        limits.cleanup()
        limits.release(p.options.support)


def _main(args, p: Plan) -> int:
    """The grading run ``p`` (its control groups released by the caller)."""
    jobs = p.jobs
    missing = [row["name"] for row in assets.status() if row["required"] and not row["present"]]
    if missing and args.profile == "full":
        say(f"warning: {', '.join(missing)} not in KERAS_HOME ({assets.keras_home()}); offline, the notebooks "
            f"needing them will fail. Fix: python -m labutils.assets fetch")
    students.mark_output(p.out, "run")
    _check_output_room(p.out, len(p.repos))
    summary = _summary(args, p, missing)
    outputs = Outputs(p.out, summary, p.repos, p.folders)
    outputs.begin()
    say(f"grading {len(p.repos)} repositor{'y' if len(p.repos) == 1 else 'ies'} ({args.profile} profile: "
        f"{args.profile_reason}; timeout {p.options.timeout:g} s per notebook, {jobs} job(s)) into {p.out}")
    say(("isolation: " if p.options.isolation.mode == "bwrap" else "WARNING: isolation: ")
        + p.options.isolation.statement)
    _say_limits(p.options.isolation)
    say(f"grader: {limits.protect_grader()}; student processes {limits.STUDENT_OOM_SCORE_ADJ}")
    for skipped in p.not_graded:
        say(f"{skipped['name']}: not graded: {skipped['reason']}")
    probe = _start_probe()
    interrupted = _grade_all(args, p, outputs, jobs)
    if interrupted and probe is not None:
        runner.kill_tree(probe)
        probe = None
    state = ("interrupted (Ctrl-C or SIGTERM): the running notebook is marked interrupted, students not yet "
             "graded are listed as such" if interrupted else "complete")
    summary = outputs.finish(state, not interrupted, _finish_probe(probe))
    counts = [nb.status for run in summary.runs for nb in run.notebooks]
    tally = ", ".join(f"{counts.count(s)} {s}" for s in ("passed", "failed", "timed out", "interrupted", "skipped")
                      if s in counts)
    say(f"{'interrupted' if interrupted else 'done'} after {summary.seconds:.1f} s: {tally or 'no notebooks'}; "
        f"report: {p.out / 'report.md'}")
    if p.options.isolation.mode != "bwrap":
        say("WARNING: " + p.options.isolation.statement)
    if p.options.isolation.missing_limits:
        _say_limits(p.options.isolation)
    return 130 if interrupted else 0 if summary.passed else 1
