"""What the per-student limits change, in one run: ``python benchmarks/limits.py [--rounds 1]`` (root, bwrap).

1. The four cheap submissions of ``tests/test_limits.py`` (3 GB of memory, 600 ``sleep`` children, 2 GB
   written into the copy, a well-behaved one) graded without limits (``--no-limits``: the grader as it was
   before them) and with ``--memory-gb 1 --max-processes 200 --disk-gb 0.5``: each case's verdict and
   seconds, side by side, and the isolation line the report prints.
2. The real lab graded in the smoke profile (this repository, one student, bwrap), limits off then on
   (the profile's defaults), ``--rounds`` times in turn: seconds and the on/off ratio.
Needs LAB5_CIFAR10 (the shared subset) and KERAS_HOME as the tests have them. Prints; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fake submissions the limit tests grade

from test_grade import kill_all, processes_with, repository  # noqa: E402
from test_limits import COURSE, LIMIT_ARGS, SLEEP, STUDENTS  # noqa: E402

OFF = ("--sandbox", "bwrap", "--no-limits")


def grade(cwd: Path, out: Path, *args: str) -> tuple[dict, float]:
    """``python -m grader --profile smoke ARGS`` run from ``cwd``: its summary and the seconds it took."""
    env = {**os.environ, "LAB5_ROOT": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LAB5_PROFILE", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader", "--profile", "smoke", "--out", str(out), *args], cwd=cwd,
                   env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    kill_all(processes_with(SLEEP))  # without a process limit nothing else ends the sleeps
    return json.loads((out / "summary.json").read_text()), seconds


def verdicts(summary: dict) -> dict[str, tuple[str, float]]:
    """Each student's first notebook: its verdict in the report's words, and its seconds."""
    found = {}
    for run in summary["runs"]:
        nb = run["notebooks"][0]
        text = f"{nb['status']}: {nb['limit']}" if nb.get("limit") else nb["status"]
        found[run["name"]] = (text + (f" at cell {nb['cell']}" if nb.get("cell") else ""), nb.get("seconds") or 0.0)
    return found


def cases(tmp: Path) -> None:
    subs = tmp / "subs"
    for name, cell in STUDENTS.items():
        repository(subs / name, {"01_work": [cell], "05_after": ["print('after')"]})
    course = repository(tmp / "course", {}, course=COURSE)
    off, _ = grade(course, tmp / "off", "--submissions", str(subs), "--jobs", "1", *OFF)
    on, _ = grade(course, tmp / "on", "--submissions", str(subs), "--jobs", "1", *LIMIT_ARGS)
    before, after = verdicts(off), verdicts(on)
    print(f"{'case':<12} {'without limits':<40} {'s':>6}   {'with limits':<48} {'s':>6}")
    for name in STUDENTS:
        print(f"{name:<12} {before[name][0]:<40} {before[name][1]:6.1f}   {after[name][0]:<48} {after[name][1]:6.1f}")
    print(f"isolation line with limits: {on['isolation']['statement']} {on['isolation']['limits']}")
    print(f"isolation line without: {off['isolation']['limits']}")


def real_lab(tmp: Path, rounds: int) -> None:
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for k in range(rounds):
        for mode, args in (("off", OFF), ("on", ("--sandbox", "bwrap"))):
            summary, took = grade(REPO, tmp / f"lab-{mode}-{k}", *args)
            passed = sum(nb["status"] == "passed" for nb in summary["runs"][0]["notebooks"])
            seconds[mode].append(took)
            print(f"real lab, smoke, limits {mode}: {took:6.1f} s ({passed} notebooks passed)")
    off, on = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    print(f"real lab, smoke: limits on / off = {on / off:.2f}x (medians {on:.1f} s / {off:.1f} s, {rounds} round(s))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="real-lab gradings per mode, in turn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases(Path(tmp))
        real_lab(Path(tmp), args.rounds)


if __name__ == "__main__":
    main()
