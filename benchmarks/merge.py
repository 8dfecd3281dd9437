"""How long one class report from many pods takes: ``python benchmarks/merge.py [--students 1000]``.

Writes ``--students`` synthetic per-student results, as the Kubernetes pods publish them
(``RESULTS_DIR/<student>/summary.json`` with the course's four notebooks, grader-computed
metrics and the deliverables' rubric; a few students' pods lost or their summary cut short),
then times ``python -m labutils.grade merge``'s work (``merge.merge``): reading them all,
the class summary, report and figure. Prints the seconds; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from labutils import config
from labutils.grade import deliverables, merge


def synthetic_summary(rng: np.random.Generator, student: str) -> dict:
    def notebook(name: str, models: tuple[str, ...]) -> dict:
        rows = [{"source": f"{Path(name).stem}.{m}.predictions.csv", "model": m, "checked": True,
                 "roc_auc": float(rng.uniform(0.7, 0.95)), "pr_auc": float(rng.uniform(0.2, 0.7)),
                 "test_examples": 10_000, "self_reported": {}, "mismatch": []} for m in models]
        return {"notebook": name, "status": "passed", "seconds": float(rng.uniform(60, 600)), "started": None,
                "ended": None, "reason": None, "cell": None, "execution_count": None, "error": None, "message": None,
                "output": name, "log": f"logs/{Path(name).stem}.log", "notes": [], "results": [], "metrics": rows}
    models = {"02": ("ram", "tfrecord"), "03": ("transfer",)}
    notebooks = [notebook(name, models.get(name[:2], ())) for name in config.COURSE_NOTEBOOKS]
    rubric = [{"id": n, "name": deliverables.NAMES[n], "status": "met" if rng.random() < 0.8 else "not met",
               "evidence": "synthetic"} for n in deliverables.NAMES]
    run = {"name": "submission", "root": "/scratch/submission", "folder": "", "state": "graded", "passed": 4,
           "all_passed": True, "notebooks": notebooks, "left_out": [], "deliverables": rubric}
    return {"profile": "full", "parameters": {}, "timeout": 10800.0, "started": "2026-11-25T00:00:00", "seconds": 1.0,
            "jobs": 1, "cpus": 2, "environment": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1",
                                                  "gpus": ["/physical_device:GPU:0"]},
            "keras_home": "/opt/keras", "missing_assets": [], "submissions": None, "out": "/scratch/out",
            "isolation": {"mode": "none", "statement": "the pod is the sandbox"}, "complete": True,
            "state": "complete", "passed": True, "runs": [run], "not_graded": []}


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
            text = json.dumps(synthetic_summary(rng, student))
            (results / student / "summary.json").write_text(text if i % 100 != 8 else text[:500])
        start = time.perf_counter()
        summary = merge.merge(results, subs, out)
        seconds = time.perf_counter() - start
        without = sum(run["state"] != "graded" for run in summary["runs"])
        print(f"merged {len(summary['runs'])} students ({without} without a result) into {out.name}/report.md "
              f"and {summary['class_figure']} in {seconds:.2f} s")


if __name__ == "__main__":
    main()
