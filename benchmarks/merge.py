"""How long one class report from many pods takes: ``python benchmarks/merge.py [--students 1000]``.

Writes ``--students`` synthetic per-student results, as the Kubernetes pods publish them
(``RESULTS_DIR/<student>/summary.json`` with the course's four notebooks, grader-computed
metrics and the deliverables' rubric; a few students' pods lost or their summary cut short),
then times ``python -m grader merge``'s work (``merge.merge``): reading them all,
the class summary, report and figure. Prints the seconds; asserts nothing.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from grader import merge
from grader.schema import Assessment, Environment, Isolation, NotebookResult, Run, Summary
from labutils import course


def synthetic_summary(rng: np.random.Generator) -> Summary:
    """One pod's summary: the course's notebooks passed, each model scored, the rubric mostly met."""
    def notebook(nb: course.Notebook) -> NotebookResult:
        rows = [{"source": f"{nb.stem}.{m}.predictions.csv", "model": m, "checked": True,
                 "roc_auc": float(rng.uniform(0.7, 0.95)), "pr_auc": float(rng.uniform(0.2, 0.7)),
                 "test_examples": 10_000, "self_reported": {}, "mismatch": []} for m in nb.models]
        return NotebookResult(nb.name, "passed", seconds=float(rng.uniform(60, 600)), output=nb.name,
                              log=f"logs/{nb.stem}.log", metrics=rows)
    rubric = [Assessment(d.id, d.title, "met" if rng.random() < 0.8 else "not met", "synthetic")
              for d in course.DELIVERABLES]
    run = Run("submission", "/scratch/submission", "", "graded", [notebook(nb) for nb in course.NOTEBOOKS], [], rubric)
    return Summary(profile="full", profile_reason="chosen explicitly", parameters={}, timeout=10800.0,
                   isolation=Isolation("none", "the pod is the sandbox"),
                   environment=Environment("3.11", "2.21.0", "3.15.1", ["/physical_device:GPU:0"]),
                   started="2026-11-25T00:00:00", seconds=1.0, cpus=2, keras_home="/opt/keras", out="/scratch/out",
                   complete=True, state="complete", runs=[run])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        subs, results, out = Path(tmp) / "subs", Path(tmp) / "results", Path(tmp) / "class"
        for i in range(args.students):
            student = f"student{i:04d}"
            (subs / student).mkdir(parents=True)
            if i % 100 == 7:
                continue  # a lost pod: no result
            (results / student).mkdir(parents=True)
            text = synthetic_summary(rng).to_json()
            (results / student / "summary.json").write_text(text if i % 100 != 8 else text[:500])
        start = time.perf_counter()
        summary = merge.merge(results, subs, out)
        seconds = time.perf_counter() - start
        without = sum(run.state != "graded" for run in summary.runs)
        print(f"merged {len(summary.runs)} students ({without} without a result) into {out.name}/report.md "
              f"and {summary.class_figure} in {seconds:.2f} s")


if __name__ == "__main__":
    main()
