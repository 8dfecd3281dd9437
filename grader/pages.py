"""The HTML a person reads: ``discussions.html`` (the class, question by question) and each student's feedback.

Both are self-contained (styles inline, images embedded as ``data:`` URIs), open from disk in
a browser, and escape everything a submission chose (names, texts, labels, messages). The
course's notes on a good answer come from ``notes.md`` beside this module, which the
instructor edits. Near-duplicates (``grader.similarity``) are flagged beside both students.
"""
from __future__ import annotations

import base64
import html
import re
import statistics
from pathlib import Path

from grader import collect, deliverables, rubric, sheet, similarity
from grader.schema import Run, Summary
from labutils import course

NOTES = Path(__file__).resolve().parent / "notes.md"
THUMB_CAP = 2_000_000
KEYS = ("roc_auc", "pr_auc", "f1")
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}
pre.answer{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.8em;border-left:3px solid #999}
.flag{background:#fff3cd;border:1px solid #e0b000;padding:.4em .6em;margin:.4em 0}
.notes{background:#eef5ff;padding:.5em 1em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
img.thumb{max-width:240px;margin:.2em;border:1px solid #ccc}section.student{border-top:1px solid #ccc;padding:.5em 0}"""


def esc(text) -> str:
    """Inert HTML of any value."""
    return html.escape("" if text is None else str(text))


def page(title: str, body: list[str]) -> str:
    """A whole self-contained page."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def image(path: Path) -> str:
    """An ``<img>`` embedding a JPEG the grader made (empty when it cannot be read)."""
    try:
        data = base64.b64encode(collect.read_bounded(path, THUMB_CAP)).decode()
    except collect.Unreadable:
        return ""
    return f'<img class="thumb" alt="{esc(path.name)}" src="data:image/jpeg;base64,{data}">'


def notes() -> dict[int, str]:
    """Deliverable id -> the instructor's notes on a good answer (``notes.md``, ``## Deliverable N`` sections)."""
    found, current = {}, None
    for line in NOTES.read_text().splitlines() if NOTES.exists() else []:
        heading = re.match(r"^##\s+Deliverable\s+(\d+)", line)
        if heading:
            current = int(heading.group(1))
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return {k: v.strip() for k, v in found.items()}


def rendered_notes(text: str) -> str:
    """Notes as HTML: ``- `` lines a list, other lines paragraphs (all escaped)."""
    items = re.split(r"\n(?=- )", text)
    listed = [f"<li>{esc(' '.join(i[2:].split()))}</li>" for i in items if i.startswith("- ")]
    other = [f"<p>{esc(i)}</p>" for i in items if i.strip() and not i.startswith("- ")]
    return "".join(other) + (f"<ul>{''.join(listed)}</ul>" if listed else "")


def metric_rows(run: Run) -> dict[str, dict[str, float]]:
    """``notebook: model`` -> the grader-computed test metrics of a student's scored models."""
    found = {}
    for nb in run.notebooks:
        for row in nb.metrics:
            if row.get("checked") and "roc_auc" in row:
                found[f"{nb.notebook[:2]}: {row.get('model')}"] = {k: row[k] for k in KEYS if k in row}
    return found


def medians(summary: Summary) -> dict[str, dict[str, float]]:
    """``notebook: model`` -> the class median of each grader-computed metric."""
    pooled: dict[str, dict[str, list[float]]] = {}
    for run in summary.runs:
        for label, values in metric_rows(run).items():
            for key, value in values.items():
                pooled.setdefault(label, {}).setdefault(key, []).append(value)
    return {label: {k: statistics.median(v) for k, v in keys.items()} for label, keys in pooled.items()}


def metrics_table(run: Run, class_medians: dict[str, dict[str, float]] | None = None) -> str:
    """The student's grader-computed metrics (beside the class median when given)."""
    rows = metric_rows(run)
    if not rows:
        return "<p>No model scored by the grader.</p>"
    head = "".join(f"<th>{k}</th>" + ("<th>class median</th>" if class_medians is not None else "") for k in KEYS)
    body = []
    for label, values in rows.items():
        cells = ""
        for key in KEYS:
            cells += f"<td>{values.get(key, float('nan')):.3f}</td>"
            if class_medians is not None:
                cells += f"<td>{class_medians.get(label, {}).get(key, float('nan')):.3f}</td>"
        body.append(f"<tr><td>{esc(label)}</td>{cells}</tr>")
    return f"<table><tr><th>model (grader-computed)</th>{head}</tr>{''.join(body)}</table>"


def photos(run: Run, out: Path, deliverable: int) -> str:
    """Deliverable 4's evidence: each photo's top-3 labels, and the thumbnails the grader kept."""
    found = next((d for d in run.discussions if d.deliverable == deliverable), None)
    if found is None or not found.photos:
        return ""
    folder = (out / run.folder).resolve()
    rows = []
    for photo in found.photos:
        images = [image(folder / t) for t in photo.thumbnails if (folder / t).resolve().is_relative_to(folder)]
        rows.append(f"<tr><td>{esc(photo.image)}</td><td>{esc(', '.join(photo.top3))}</td>"
                    f"<td>{''.join(images)}</td></tr>")
    return f"<table><tr><th>photo</th><th>top-3</th><th>overlays</th></tr>{''.join(rows)}</table>"


def discussion_matches(summary: Summary) -> dict[int, list[similarity.Match]]:
    """Deliverable id -> the near-duplicate pairs of its discussions (template words left out)."""
    templates = deliverables.templates()
    found = {}
    for d in course.DELIVERABLES:
        if d.discussion is None:
            continue
        texts = {run.name: similarity.words(x.text) for run in summary.runs for x in run.discussions
                 if x.deliverable == d.id and x.text}
        found[d.id] = similarity.near_duplicates(str(d.id), texts, similarity.words(templates.get(d.discussion.name)))
    return found


def exercise_matches(summary: Summary) -> list[similarity.Match]:
    """Near-duplicate exercise solutions between students (Python tokens)."""
    found = []
    for name in rubric.exercise_names():
        solutions = {run.name: similarity.code_tokens(e.solution) for run in summary.runs for e in run.exercises
                     if e.name == name and e.solution}
        found += similarity.near_duplicates(name, solutions)
    return found


def flags(student: str, matches: list[similarity.Match]) -> str:
    """The flags beside one student: who else wrote nearly the same, how much, and the passage."""
    shown = []
    for m in matches:
        if student in (m.first, m.second):
            other = m.second if student == m.first else m.first
            shown.append(f'<div class="flag">Near-duplicate of <b>{esc(other)}</b> ({esc(m.item)}): containment '
                         f'{m.score:.2f}. Shared passage: <q>{esc(m.passage)}</q></div>')
    return "".join(shown)


def _answer(run: Run, d: course.Deliverable, out: Path, matches: list[similarity.Match]) -> str:
    """One student's answer to one discussion, with the evidence to judge it."""
    assessed = next((a for a in run.deliverables if a.id == d.id), None)
    text = next((x.text for x in run.discussions if x.deliverable == d.id), None)
    status = f"{assessed.status}: {assessed.evidence}" if assessed else run.state
    to_grade = " (to grade in manual.csv)" if assessed and assessed.manual and assessed.points is None else ""
    evidence = photos(run, out, d.id) if d.discussion is course.CAM_NB else metrics_table(run)
    answer = f'<pre class="answer">{esc(text)}</pre>' if text is not None else "<p><i>No discussion cell.</i></p>"
    return (f'<section class="student" id="{esc(run.folder or run.name)}-{d.id}"><h3>{esc(run.name)}</h3>'
            f"<p><b>Grader's check</b>{esc(to_grade)}: {esc(status)}</p>{flags(run.name, matches)}"
            f"{answer}{evidence}</section>")


def discussions_page(summary: Summary, out: Path) -> str:
    """``discussions.html``: per discussion deliverable, the course's notes, then every student's answer in full."""
    by_deliverable, course_notes = discussion_matches(summary), notes()
    body = [f"<p>{len(summary.runs)} students. Near-duplicates: {esc(similarity.describe())}.</p>"]
    for d in course.DELIVERABLES:
        if d.discussion is None:
            continue
        body += [f'<h2 id="d{d.id}">Deliverable {d.id}: {esc(d.title)} (up to {rubric.maximum(d.id):g} points)</h2>',
                 f'<div class="notes"><b>What a good answer covers</b>{rendered_notes(course_notes.get(d.id, ""))}</div>']
        body += [_answer(run, d, out, by_deliverable.get(d.id, [])) for run in summary.runs]
    code = exercise_matches(summary)
    body.append("<h2>Exercise solutions</h2>")
    shown = [f"<h3>{esc(run.name)}</h3>{flags(run.name, code)}" for run in summary.runs if flags(run.name, code)]
    body += shown or ["<p>No near-duplicate solutions.</p>"]
    return page("Lab 5: the discussions, question by question", body)


def _exercise_rows(run: Run) -> str:
    rows = "".join(f"<tr><td>{esc(e.name)}</td><td>{e.points:g} / {e.max_points:g}</td><td>{esc(e.status)}</td>"
                   f"<td>{esc(e.evidence)}</td></tr>" for e in run.exercises)
    return f"<table><tr><th>exercise</th><th>points</th><th>self-check</th><th>evidence</th></tr>{rows}</table>"


def _deliverable_rows(run: Run, entries: dict[tuple[str, int], sheet.Entry]) -> str:
    rows = []
    for a in run.deliverables:
        entry = entries.get((run.name, a.id))
        given = entry.points if entry is not None and entry.points is not None else a.points
        shown = "to be graded" if given is None else f"{given:g}"
        comment = entry.comment if entry is not None else ""
        rows.append(f"<tr><td>{a.id}. {esc(a.name)}</td><td>{shown} / {a.max_points:g}</td><td>{esc(a.status)}: "
                    f"{esc(a.evidence)}</td><td>{esc(comment)}</td></tr>")
    return ("<table><tr><th>deliverable</th><th>points</th><th>grader's check</th><th>instructor's comment</th></tr>"
            + "".join(rows) + "</table>")


def feedback_page(summary: Summary, run: Run, out: Path, entries: dict[tuple[str, int], sheet.Entry],
                  total: str) -> str:
    """One student's feedback: their points and evidence, failed self-checks, metrics beside the class median,
    heatmaps, and the instructor's comments."""
    failed = [e for e in run.exercises if e.status not in ("passed",)]
    body = [f"<p><b>Total: {esc(total)}</b> ({esc(run.state)})</p>", "<h2>Exercises</h2>", _exercise_rows(run),
            "<h2>Deliverables</h2>", _deliverable_rows(run, entries)]
    if failed:
        body += ["<h2>Self-checks that did not pass</h2>"] + [
            f'<h3>{esc(e.name)}</h3><pre class="answer">{esc(e.evidence)}</pre>' for e in failed]
    body += ["<h2>Your models (computed by the grader) and the class median</h2>", metrics_table(run, medians(summary))]
    heatmaps = photos(run, out, next((d.id for d in course.DELIVERABLES if d.discussion is course.CAM_NB), 0))
    if heatmaps:
        body += ["<h2>Your top-3 labels and heatmaps</h2>", heatmaps]
    return page(f"Lab 5 feedback: {run.name}", body)
