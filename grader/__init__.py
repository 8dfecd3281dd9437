"""The course's grader for Lab 5 (course-only: the student release does not contain it).

``python -m grader`` has five subcommands (``run`` is the default)::

    python -m grader --profile smoke                  # this repository: graded/ + graded/report.md
    python -m grader run --submissions DIR --jobs 4   # a class: DIR-graded/report.md, DIR-graded/students/<name>/
    python -m grader k8s --submissions DIR --image IMAGE > job.yaml   # one Kubernetes pod per student
    python -m grader merge RESULTS --submissions DIR --out OUT        # the pods' results as one class report
    python -m grader release --out release/           # the student version of the lab
    python -m grader finalize DIR-graded [--roster FILE]   # manual.csv read: gradebook.csv, feedback/

``run`` executes every course notebook (``labutils.course.NOTEBOOKS``) of each submission
with papermill, in a private copy (the submission itself is never written), inside a
bubblewrap sandbox (``--sandbox``), on the course's own ``labutils``. ``--profile`` (default:
the machine's, see ``labutils.config.resolve_profile``) and every ``-p name value`` reach each
notebook's ``parameters`` cell. The test metrics in the report are the grader's own, computed
from each model's saved predictions and its own CIFAR-10 labels. The exit status is 0 only
if every notebook passed.

Modules, one job each: ``cli`` (the options, defined once), ``run`` (a grading run and its
outputs), ``runner`` (one submission: private copy, papermill children, time limits),
``child`` (the program a papermill child runs), ``sandbox`` (bubblewrap), ``limits`` (memory,
process and disk limits per student: control groups, tmpfs), ``collect``
(bounded reading, grader-computed metrics), ``deliverables`` (the rubric), ``report``
(Markdown), ``schema`` (what ``summary.json`` holds), ``students`` (who is graded),
``settings`` (time limits, job sizes, resource limits), ``k8s``, ``merge``, ``release``; the grades:
``rubric`` (points), ``exercises`` (self-check outcomes, own work read with ``ast``), ``evidence`` (what
is kept of a student before their copy goes), ``similarity`` (near-duplicates), ``sheet``
(``manual.csv``), ``gradebook``, ``pages`` (HTML), ``finalize``.
"""
