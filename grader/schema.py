"""The grader's records: what ``summary.json`` holds, defined once.

``run`` writes a :class:`Summary` (one repository, or a class with ``--submissions``);
each Kubernetes pod writes one for its student; ``merge`` reads those back with
:meth:`Summary.from_json` and writes the class's. The report is rendered from these
records, never from loose dicts.
"""
from __future__ import annotations

import dataclasses
import json
import typing


class MetricRow(typing.TypedDict, total=False):
    """One model's test metrics as the grader found them (``collect.notebook_results``).

    ``roc_auc``/``pr_auc``/``f1``/``test_examples`` are the grader's own numbers when
    ``checked`` (scored from the saved predictions); ``self_reported`` holds the student's.
    """

    source: str  # the results file it comes from
    model: str | None
    checked: bool
    roc_auc: float
    pr_auc: float
    f1: float
    test_examples: int
    self_reported: dict
    mismatch: list[str]
    problem: str
    unreadable: str


@dataclasses.dataclass
class NotebookResult:
    """What happened to one notebook; ``cell`` counts the source notebook's cells from 1, markdown included."""

    notebook: str
    status: str  # "passed" | "failed" | "timed out" | "interrupted" | "skipped" | "missing"
    seconds: float = 0.0
    started: str | None = None
    ended: str | None = None
    reason: str | None = None  # why skipped, e.g. "needs 01"
    cell: int | None = None
    execution_count: int | None = None
    error: str | None = None  # exception name
    limit: str | None = None  # the limit that stopped it, e.g. "out of memory (limit 6 GB)" (grader.limits)
    message: str | None = None
    output: str | None = None  # executed notebook, relative to the report
    log: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # outputs the grader capped
    results: list[str] = dataclasses.field(default_factory=list)  # records/results files it wrote
    metrics: list[MetricRow] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Assessment:
    """One deliverable of one student: ``status`` met / not met / not checkable, and one line of evidence.

    ``points``: what the grader gives (None: a person grades its discussion, ``manual``), of ``max_points``.
    """

    id: int
    name: str
    status: str
    evidence: str
    points: float | None = None
    max_points: float = 0
    manual: bool = False


@dataclasses.dataclass
class ExerciseScore:
    """One exercise of one student (``grader.exercises``): its self-check's outcome, whether the solution is
    the student's own, the points it earns and one line of evidence (the self-check's message when it failed)."""

    name: str
    notebook: str
    status: str  # "passed" | "failed" | "not implemented" | "not run" | "missing"
    evidence: str
    points: float = 0
    max_points: float = 0
    references: list[str] = dataclasses.field(default_factory=list)  # course references its solution calls
    solution: str = ""  # the solution region's source (capped), for the similarity check


@dataclasses.dataclass
class Photo:
    """One photo of notebook 04 as a grader sees it: top-3 labels and thumbnails of its overlays
    (files in the student's output folder, relative to it)."""

    image: str
    top3: list[str] = dataclasses.field(default_factory=list)
    thumbnails: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Discussion:
    """The written part of one deliverable: the text of the student's discussion cell (None: no such cell)."""

    deliverable: int
    text: str | None = None
    photos: list[Photo] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Run:
    """One student's (or the one repository's) grading."""

    name: str
    root: str
    folder: str  # its outputs, relative to the summary ("" for one repository)
    state: str  # "graded", "running", "interrupted", or "not graded: why" / "no result: why"
    notebooks: list[NotebookResult] = dataclasses.field(default_factory=list)
    left_out: list[str] = dataclasses.field(default_factory=list)  # entries not copied (symlinks, FIFOs...)
    deliverables: list[Assessment] = dataclasses.field(default_factory=list)
    exercises: list[ExerciseScore] = dataclasses.field(default_factory=list)
    discussions: list[Discussion] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(nb.status == "passed" for nb in self.notebooks)

    @property
    def all_passed(self) -> bool:
        return self.state == "graded" and bool(self.notebooks) and self.passed == len(self.notebooks)


@dataclasses.dataclass(frozen=True)
class Isolation:
    """How submissions ran: ``mode`` ("bwrap", "none", or "pod" for Kubernetes) and what that means;
    ``limits``: the resource limits each student had, and those missing (``grader.limits.describe``)."""

    mode: str
    statement: str
    limits: str = ""
    missing_limits: list[str] = dataclasses.field(default_factory=list)  # "memory", "processes", "disk"


@dataclasses.dataclass
class Environment:
    """The software the notebooks ran on; ``gpus`` None when unknown."""

    python: str | None = None
    tensorflow: str | None = None
    keras: str | None = None
    gpus: list[str] | None = None


@dataclasses.dataclass
class Summary:
    """A grading run: its settings, environment and isolation, and one :class:`Run` per student."""

    profile: str | None
    profile_reason: str
    parameters: dict
    timeout: float
    isolation: Isolation
    environment: Environment = dataclasses.field(default_factory=Environment)
    started: str | None = None
    seconds: float = 0.0
    jobs: int = 1
    cpus: int = 0
    keras_home: str | None = None
    missing_assets: list[str] = dataclasses.field(default_factory=list)
    submissions: str | None = None  # the class folder; None for one repository
    out: str = ""
    merged_from: str | None = None  # the pods' results folder, for a merged report
    complete: bool = False
    state: str = "starting"
    runs: list[Run] = dataclasses.field(default_factory=list)
    not_graded: list[dict] = dataclasses.field(default_factory=list)  # {"name", "reason"}
    class_figure: str | None = None

    @property
    def passed(self) -> bool:
        return self.complete and all(run.all_passed for run in self.runs)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        for run, record in zip(self.runs, data["runs"]):
            record.update(passed=run.passed, all_passed=run.all_passed)
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Summary:
        """A summary as ``to_json`` wrote it; ValueError (or TypeError) when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(**{**_known(cls, data), "isolation": Isolation(**_known(Isolation, data["isolation"])),
                      "environment": Environment(**_known(Environment, data.get("environment") or {})),
                      "runs": [_run(r) for r in data["runs"]]})


def _known(cls, data) -> dict:
    """The entries of ``data`` that are fields of ``cls`` (derived ones like ``passed`` are recomputed)."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: not a JSON object")
    return {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}


def _run(data) -> Run:
    fields = _known(Run, data)
    if not isinstance(fields.get("notebooks", []), list):
        raise ValueError("a run's notebooks is not a list")
    notebooks = [NotebookResult(**_known(NotebookResult, nb)) for nb in fields.get("notebooks", [])]
    assessed = [Assessment(**_known(Assessment, d)) for d in fields.get("deliverables", [])]
    scored = [ExerciseScore(**_known(ExerciseScore, e)) for e in fields.get("exercises", [])]
    discussions = [Discussion(**{**_known(Discussion, d), "photos": [Photo(**_known(Photo, p))
                                                                     for p in d.get("photos", [])]})
                   for d in fields.get("discussions", [])]
    return Run(**{**fields, "notebooks": notebooks, "deliverables": assessed, "exercises": scored,
                  "discussions": discussions})
