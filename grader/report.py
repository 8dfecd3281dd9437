"""The grading report (``report.md``): one repository's table, or a student x notebook table.

Everything a submission chose (folder names, messages, model names) is escaped:
it can neither break a table row nor inject HTML or links. The metric columns
are the grader's own numbers; a number only the student's code produced is
always marked self-reported.
"""
from __future__ import annotations

from grader import collect
from grader.markdown import cell
from grader.schema import NotebookResult, Run, Summary
from labutils import course

NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "f1": "F1", "test_examples": "n"}
METRICS_NOTE = ("- Metrics: computed by the grader from each model's saved test predictions and the true labels "
                "of its own CIFAR-10 copy (F1 at the student's stated threshold); a number marked "
                "*self-reported* was produced only by the student's code and is not checked.")


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def status_text(nb: NotebookResult) -> str:
    if nb.status == "skipped":
        return f"skipped: {nb.reason}"
    status = f"{nb.status}: {nb.limit}" if nb.limit else nb.status  # "failed: out of memory (limit 6 GB)"
    if nb.status in ("failed", "timed out", "interrupted") and nb.cell:
        return f"{status} at cell {nb.cell}"
    return status


def check_text(row: dict) -> str:
    """What the grader found about one metrics row."""
    if "unreadable" in row:
        return f"unreadable: {row['unreadable']}"
    if not row.get("checked"):
        return f"self-reported, not checked: {row.get('problem')}"
    notes = [row["problem"]] if row.get("problem") else []
    if row.get("mismatch"):
        notes.append("MISMATCH with self-report: " + "; ".join(row["mismatch"]))
    elif row.get("self_reported") and "roc_auc" in row:
        notes.append("self-report agrees")
    return "; ".join(notes) or "computed by the grader"


def metric_values(row: dict) -> list[str]:
    """The four metric columns of a row: the grader's numbers, or the student's marked self-reported."""
    if "unreadable" in row:
        return ["", "", "", ""]
    if row.get("checked") and "roc_auc" in row:
        return [_fmt(row.get(k)) for k in collect.KEY_METRICS]
    stated = row.get("self_reported", {})
    return [f"{_fmt(stated[k])} (self-reported)" if k in stated else "" for k in collect.KEY_METRICS]


def metric_text(row: dict) -> str:
    """One row in a few words, for the combined table."""
    name = row.get("model") or row.get("source")
    if "unreadable" in row:
        return f"{row['source']}: unreadable"
    if row.get("checked") and "roc_auc" in row:
        values = ", ".join(f"{NAMES[k]} {_fmt(row[k])}" for k in collect.KEY_METRICS if k in row)
        extra = f" MISMATCH with self-report: {'; '.join(row['mismatch'])}" if row.get("mismatch") else ""
        return f"{name}: {values}{extra}" + (f" ({row['problem']})" if row.get("problem") else "")
    stated = row.get("self_reported", {})
    values = ", ".join(f"{NAMES[k]} {_fmt(stated[k])}" for k in collect.KEY_METRICS if k in stated)
    return f"{name}: {values} (self-reported, not checked: {row.get('problem')})"


def _environment_lines(summary: Summary) -> list[str]:
    env = summary.environment
    gpu = "unknown" if env.gpus is None else (", ".join(env.gpus) if env.gpus else "none (CPU only)")
    params = ", ".join(f"{k}={v!r}" for k, v in summary.parameters.items()) or "none"
    lines = []
    if not summary.complete:
        lines.append(f"- **INCOMPLETE**: {cell(summary.state)}; this report holds only what finished.")
    isolation = " ".join(filter(None, (summary.isolation.statement, summary.isolation.limits)))
    lines += [f"- Isolation: {cell(isolation)}",
              f"- Profile: **{summary.profile}** ({cell(summary.profile_reason)}; parameters: {cell(params)}; "
              f"timeout {summary.timeout:g} s per notebook)",
              f"- Python {env.python}, TensorFlow {env.tensorflow}, Keras {env.keras}; GPU: {gpu}",
              f"- Started {summary.started}, {summary.seconds:.1f} s in all; "
              f"{summary.jobs} job(s) on {summary.cpus} CPU core(s)", METRICS_NOTE]
    if summary.missing_assets:
        lines.append(f"- Keras cache `{summary.keras_home}` lacks {', '.join(summary.missing_assets)} "
                     f"(`python -m labutils.assets fetch`)")
    return lines


def _problems(prefix: str, notebooks: list[NotebookResult]) -> list[str]:
    lines = []
    for nb in notebooks:
        if nb.status in ("failed", "timed out", "interrupted"):
            count = f" (In \\[{nb.execution_count}\\])" if nb.execution_count else ""
            message = collect.clean(f"{nb.error or nb.status}: {nb.message or ''}")[:4000]
            # an indented code block: nothing in the message can close it
            lines += [f"### {cell(prefix + nb.notebook)}: {cell(status_text(nb))}{count}", "",
                      *[f"    {line}" for line in message.splitlines() or [""]], ""]
            where = [f"executed notebook `{cell(prefix + nb.output)}`" if nb.output else
                     "no executed notebook", f"log `{cell(prefix + nb.log)}`" if nb.log else ""]
            lines += ["; ".join(filter(None, where)).capitalize(), ""]
    return lines


def _notes(prefix: str, run: Run) -> list[str]:
    notes = [f"- {cell(prefix + nb.notebook)}: {cell(note)}" for nb in run.notebooks for note in nb.notes]
    if run.left_out:
        shown = ", ".join(run.left_out[:10]) + (" ..." if len(run.left_out) > 10 else "")
        notes.append(f"- {cell(prefix or run.name)}: not copied into the sandbox (not regular files): {cell(shown)}")
    return notes


def _deliverables(runs: list[Run]) -> list[str]:
    """Markdown lines: one table, a row per student, a column per deliverable; and the count met."""
    if not any(run.deliverables for run in runs):
        return []
    titles = {d.id: d.title for d in course.DELIVERABLES}
    lines = ["## Deliverables", "", "| Student | " + " | ".join(f"{n}. {cell(t)}" for n, t in titles.items()) + " |",
             "|---|" + "---|" * len(titles)]
    for run in runs:
        found = {d.id: d for d in run.deliverables}
        cells = [f"**{found[n].status}**: {cell(found[n].evidence)}" if n in found else "" for n in titles]
        lines.append(f"| {cell(run.name)} | " + " | ".join(cells) + " |")
    met = [sum(any(d.id == n and d.status == "met" for d in run.deliverables) for run in runs) for n in titles]
    lines += ["", "Met, per deliverable: " + "; ".join(f"{n}. {m} of {len(runs)}" for n, m in zip(titles, met)), ""]
    return lines


def _sections(runs: list[Run], prefix) -> list[str]:
    """The deliverables table, failures and notes of ``runs``; ``prefix(run)`` leads each output path."""
    problems = [line for run in runs for line in _problems(prefix(run), run.notebooks)]
    notes = [line for run in runs for line in _notes(prefix(run), run)]
    return (["", *_deliverables(runs)] + (["## Failures", "", *problems] if problems else [])
            + (["", "## Notes", "", *notes] if notes else []))


def render_run(summary: Summary, run: Run) -> str:
    """The report of one repository: a row per notebook (and per model of a notebook with several)."""
    lines = [f"# Lab 5 grading report: {cell(run.name)}", "", *_environment_lines(summary),
             f"- Repository: `{cell(run.root)}`; {run.passed} of {len(run.notebooks)} notebooks passed"
             + (f" ({cell(run.state)})" if run.state != "graded" else ""), "",
             "| Notebook | Status | Seconds | Model | Cat ROC-AUC | PR-AUC | F1 | Test examples | Check |",
             "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for nb in run.notebooks:
        for row in nb.metrics or [{}]:
            model = row.get("model") or row.get("source") or ""
            values = metric_values(row) if row else ["", "", "", ""]
            lines.append(f"| {cell(nb.notebook)} | {cell(status_text(nb))} | {nb.seconds:.1f} | {cell(model)} | "
                         + " | ".join(cell(v) for v in values) + f" | {cell(check_text(row)) if row else ''} |")
    return "\n".join(lines + _sections([run], lambda r: "")) + "\n"


CLASS_FIGURE = "class_roc_auc.png"
# The models whose grader-computed test ROC-AUC the class figure shows: (notebook number, model) -> label.
CLASS_MODELS = {(nb.number, model): f"{nb.stem}: {model}" for nb in course.NOTEBOOKS for model in nb.models}


def class_scores(summary: Summary) -> dict[str, list[float]]:
    """Label -> the grader-computed test ROC-AUC of that model, one per student who has it."""
    found: dict[str, list[float]] = {label: [] for label in CLASS_MODELS.values()}
    for run in summary.runs:
        for nb in run.notebooks:
            for row in nb.metrics:
                label = CLASS_MODELS.get((nb.notebook[:2], row.get("model")))
                if label and row.get("checked") and isinstance(row.get("roc_auc"), float):
                    found[label].append(row["roc_auc"])
    return found


def write_class_figure(summary: Summary, out) -> str | None:
    """``class_roc_auc.png`` in ``out``: each model's test ROC-AUC across the class (one dot a student,
    the median marked); returns its file name, or None when no student has a scored model."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt
    import numpy as np

    scores = {label: values for label, values in class_scores(summary).items() if values}
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(7, 1 + 0.8 * len(scores)))
    rng = np.random.default_rng(0)  # a fixed jitter: the same class gives the same picture
    for row, (label, values) in enumerate(scores.items()):
        ax.scatter(values, row + rng.uniform(-0.15, 0.15, len(values)), s=18, alpha=0.6)
        ax.plot([np.median(values)] * 2, [row - 0.3, row + 0.3], color="black", linewidth=2)
    ax.set_yticks(range(len(scores)), [f"{label} ({len(v)})" for label, v in scores.items()])
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("test ROC-AUC computed by the grader (black: median; dashed: chance)")
    ax.set_title(f"{len(summary.runs)} students")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / CLASS_FIGURE, dpi=100)
    plt.close(fig)
    return CLASS_FIGURE


def _class_row(run: Run, columns: list[str]) -> str:
    by_name = {nb.notebook: nb for nb in run.notebooks}
    cells = []
    for column in columns:
        nb = by_name.get(column)
        if nb is None:
            cells.append("not run" if run.state != "graded" else "missing")
            continue
        text = [status_text(nb) + (f" ({nb.seconds:.0f} s)" if nb.status not in ("skipped", "missing") else "")]
        cells.append("<br>".join(cell(t) for t in text + [metric_text(r) for r in nb.metrics]))
    total = f"{run.passed}/{len(columns)}" + (f" ({cell(run.state)})" if run.state != "graded" else
                                            " (no notebooks)" if not run.notebooks else "")
    return f"| {cell(run.name)} | " + " | ".join(cells) + f" | {total} |"


def render_combined(summary: Summary) -> str:
    """The report of many submissions: a student x notebook table of statuses and metrics."""
    runs = summary.runs
    columns = sorted({nb.notebook for run in runs for nb in run.notebooks})
    passed = sum(run.all_passed for run in runs)
    lines = [f"# Lab 5 grading report: {len(runs)} submissions", "", *_environment_lines(summary),
             f"- Submissions: `{cell(summary.submissions)}`; {passed} of {len(runs)} passed every notebook", "",
             "| Student | " + " | ".join(cell(c) for c in columns) + " | Passed |",
             "|---|" + "---|" * len(columns) + "---:|"]
    lines += [_class_row(run, columns) for run in runs]
    for skipped in summary.not_graded:
        lines.append(f"| {cell(skipped['name'])} | " + " | ".join("" for _ in columns)
                     + f" | not graded: {cell(skipped['reason'])} |")
    if summary.class_figure:
        lines += ["", "## The class at a glance", "", f"![Test ROC-AUC across the class]({summary.class_figure})"]
    return "\n".join(lines + _sections(runs, lambda run: f"{run.folder}/")) + "\n"
