"""From statuses to grades: the rubric, own work read with ast, near-duplicates, the instructor's sheet,
finalize, and the pages a person reads (opened in a real headless browser). Cheap: synthetic
summaries and the tiny fake courses of test_grade; the real lab's class is tests/test_lab_release.py."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import deliverables, exercises, finalize, gradebook, pages, rubric, sheet, similarity
from grader.schema import Assessment, Discussion, ExerciseScore, Isolation, Run, Summary
from labutils import course
from test_grade import MAKE, USE, repository, run_grader

REPO = Path(__file__).resolve().parents[1]
ANSWER = ("The transfer model separates cats from the other classes far better than the small network of Lab 4, "
          "because the pretrained filters already respond to fur, eyes and ears; fine-tuning the top block helped "
          "a little more, while the frozen phase alone was close behind, and the cost was a much longer epoch.")


def test_the_rubric_covers_the_course_and_adds_up_to_100():
    rubric.check()
    assert set(rubric.exercise_names()) == set(rubric.EXERCISES)
    assert sum(rubric.maximum(n) for n in rubric.exercise_names()) + sum(
        rubric.maximum(d.id) for d in course.DELIVERABLES) == 100


def test_the_recorded_templates_are_the_course_notebooks():
    """grader/templates.json is what `python -m grader release` records from the course's notebooks."""
    assert deliverables.templates() == deliverables.course_templates(REPO / "notebooks"), \
        "the discussion cells changed: run python -m grader release to record them"


def discussion_notebook(path: Path, text: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = [course.DISCUSSION_TAG]
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


def test_a_discussion_counts_as_written_with_40_words_of_its_own(tmp_path):
    template = deliverables.templates()[course.TRANSFER_NB.name]
    unedited = discussion_notebook(tmp_path / "a.ipynb", template)
    assert deliverables.edited(unedited, template) == (False, "its discussion cell is the unedited template")
    short = discussion_notebook(tmp_path / "b.ipynb", template + "\n\nIt was better.")
    assert deliverables.edited(short, template)[0] is False and "at least 40" in deliverables.edited(short, template)[1]
    written = discussion_notebook(tmp_path / "c.ipynb", template + "\n\n" + ANSWER)
    assert deliverables.edited(written, template)[0] is True


def cells_notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.mark.parametrize("imports, call, flagged", [
    ("from labutils import tfrecords", "tfrecords.serialize(image, 0, 0, 0)", True),
    ("from labutils.tfrecords import serialize as pack", "pack(image, 0, 0, 0)", True),
    ("import labutils.tfrecords as t", "t.serialize(image, 0, 0, 0)", True),
    ("from labutils import tfrecords", "helper(image)", True),  # through the notebook's own function
    ("from labutils import tfrecords", "b'tfrecords.serialize'  # tfrecords.serialize in text only", False),
    ("from labutils import tfrecords", "tfrecords.sha256(image)", False),
])
def test_own_work_is_read_from_the_code_not_the_text(imports, call, flagged):
    nb = cells_notebook(imports, "def helper(image):\n    return tfrecords.serialize(image, 0, 0, 0)",
                        f"def make_example(image, label, class_id, index):\n    # Exercise make_example: do it.\n"
                        f"    return {call}")
    found = exercises.references("make_example", nb, rubric.EXERCISES["make_example"].references)
    assert (found == ["labutils.tfrecords.serialize"]) is flagged, found


def test_near_duplicates_are_flagged_and_the_template_does_not_count():
    template = similarity.words("Replace these prompts with your own answer, a paragraph or two, please.")
    own = similarity.words(ANSWER)
    other = similarity.words("Frozen features were enough here: the head learned in one epoch and the scores barely "
                             "moved after unfreezing, which suggests the smoke profile is far too small to tell.")
    found = similarity.near_duplicates("3", {"a": template + own, "b": own + template, "c": template + other,
                                             "d": list(template)}, template)
    assert [(m.first, m.second) for m in found] == [("a", "b")]
    assert found[0].score >= 0.9 and "pretrained filters already respond" in found[0].passage


def test_what_most_of_a_class_writes_flags_nobody_but_a_copied_solution_does():
    one_liner = similarity.code_tokens('model.get_layer("conv_base").trainable = False')
    copied = similarity.code_tokens("for layer in model.get_layer('conv_base').layers:\n"
                                    "    layer.trainable = False  # every layer, one by one\n"
                                    "model.get_layer('conv_base').trainable = False\n")
    answers = {f"s{i:02d}": one_liner for i in range(similarity.MAX_SHARERS + 1)}
    answers.update({"x": copied, "y": copied})
    assert [(m.first, m.second) for m in similarity.near_duplicates("freeze_conv_base", answers)] == [("x", "y")]


def test_the_shared_passage_shown_is_the_students_own_not_the_template():
    template = similarity.words("Replace these prompts with your own answer, a paragraph or two, using the tables, "
                                "curves and sentences above, and say which profile produced them, please.")
    own = similarity.words(ANSWER)[:12]  # a shorter answer than the prompts both students left in
    found = similarity.near_duplicates("1", {"a": template + own, "b": template + own}, template)
    assert len(found) == 1 and found[0].passage == " ".join(own)


def summary_of(texts: dict[str, str]) -> Summary:
    """A graded class whose students all met every deliverable, with these discussion texts."""
    runs = []
    for name, text in texts.items():
        met = [Assessment(d.id, d.title, "met", "evidence <i>", None if rubric.manual(d) else rubric.maximum(d.id),
                          rubric.maximum(d.id), rubric.manual(d)) for d in course.DELIVERABLES]
        scored = [ExerciseScore(n, "nb", "passed", "ok", rubric.maximum(n), rubric.maximum(n), [], "x = 1")
                  for n in rubric.exercise_names()]
        discussions = [Discussion(d.id, text) for d in course.DELIVERABLES if d.discussion is not None]
        runs.append(Run(name, f"/subs/{name}", f"students/{name}", "graded", [], [], met, scored, discussions))
    return Summary("smoke", "test", {}, 60, Isolation("none", "test"), submissions="/subs", complete=True,
                   runs=runs)


def write_sheet(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sheet.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_finalize_reads_the_sheet_and_rejects_bad_rows_by_row_and_column(tmp_path):
    summary = summary_of({"alice": ANSWER, "bob": "Mine. " * 50})
    (tmp_path / "summary.json").write_text(summary.to_json())
    finalize.write_class(summary, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "manual.csv")))
    assert [(r["student"], r["deliverable"], r["points"]) for r in rows][:3] == [("alice", "1", ""), ("alice", "3", ""),
                                                                                 ("alice", "4", "")]
    before = {r["student"]: r for r in csv.DictReader(open(tmp_path / "gradebook.csv"))}
    assert before["alice"]["needs_manual"] == "true" and before["alice"]["D1"] == ""
    for row in rows:
        row["points"] = {"1": "12", "3": "7.5", "4": "15"}[row["deliverable"]] if row["student"] == "alice" else ""
    write_sheet(tmp_path / "manual.csv", rows)
    assert finalize.finalize(tmp_path) == []
    after = {r["student"]: r for r in csv.DictReader(open(tmp_path / "gradebook.csv"))}
    assert after["alice"]["needs_manual"] == "false" and after["bob"]["needs_manual"] == "true"
    assert float(after["alice"]["total"]) == float(before["alice"]["total"]) + 34.5
    assert (tmp_path / "feedback" / "alice.html").is_file()
    bad = [dict(rows[0], points="13"), dict(rows[1], student="mallory"), dict(rows[2], points="lots")]
    write_sheet(tmp_path / "manual.csv", bad)
    assert finalize.finalize(tmp_path) == [
        "manual.csv row 2, column points: 13 is outside 0..12, the maximum of deliverable 1",
        "manual.csv row 3, column student: unknown student 'mallory'",
        "manual.csv row 4, column points: 'lots' is not a number"]


def test_a_roster_adds_the_lms_id(tmp_path):
    summary = summary_of({"alice": ANSWER})
    (tmp_path / "summary.json").write_text(summary.to_json())
    finalize.write_class(summary, tmp_path)
    (tmp_path / "roster.csv").write_text("student,lms_id\nalice,s123\n")
    assert finalize.finalize(tmp_path, tmp_path / "roster.csv") == []
    row = next(csv.DictReader(open(tmp_path / "gradebook.csv")))
    assert (row["student"], row["lms_id"]) == ("alice", "s123") and list(row)[:2] == ["student", "lms_id"]


def test_the_pages_open_in_a_browser_and_flag_identical_discussions(tmp_path):
    from browser import open_page

    hostile = "<script>document.body.innerHTML = 'gone'</script>" + " a very long unbroken word" * 3 + "x" * 3000
    summary = summary_of({"alice": ANSWER, "bob": ANSWER, "carol": hostile})
    (tmp_path / "summary.json").write_text(summary.to_json())
    finalize.write_class(summary, tmp_path)
    assert finalize.finalize(tmp_path) == []
    seen = open_page(tmp_path / "discussions.html")
    text = " ".join(seen["text"].split())
    assert ANSWER in text and "<script>document.body.innerHTML" in text and not seen["clipped"]
    assert text.count("Near-duplicate of bob") == 3 and text.count("Near-duplicate of alice") == 3
    assert "Near-duplicate of carol" not in text
    feedback = open_page(tmp_path / "feedback" / "carol.html")
    assert "Total:" in feedback["text"] and not feedback["clipped"]


def test_a_second_grading_keeps_the_points_entered(tmp_path):
    course_repo = repository(tmp_path / "course", {}, course=("01_make", "02_use"))
    subs = tmp_path / "subs"
    repository(subs / "alice", {"01_make": [MAKE], "02_use": [USE]})
    out = tmp_path / "graded"
    args = ("--profile", "smoke", "--submissions", str(subs), "--out", str(out), "--sandbox", "none", "--jobs", "1")
    run_grader(course_repo, *args)
    assert (out / "gradebook.csv").is_file() and (out / "discussions.html").is_file()
    write_sheet(out / "manual.csv", [{"student": "alice", "deliverable": "3", "max": "15", "points": "9",
                                      "comment": "good"}])
    run_grader(course_repo, *args)
    rows = list(csv.DictReader(open(out / "manual.csv")))
    assert [(r["student"], r["deliverable"], r["points"], r["comment"]) for r in rows] == [("alice", "3", "9", "good")]
    assert next(csv.DictReader(open(out / "gradebook.csv")))["D3"] == "9"
