"""Run the lab's notebooks headlessly with papermill, sandboxed, and write a report: ``python -m labutils.grade``.

One repository (this one, or ``$LAB5_ROOT``)::

    python -m labutils.grade --profile smoke            # graded/NN_*.ipynb, graded/summary.json, graded/report.md
    python -m labutils.grade -p epochs_head 3 --timeout 7200

Many students, each folder of ``DIR`` a copy of this repository's layout::

    python -m labutils.grade --submissions DIR --jobs 4  # DIR-graded/report.md, DIR-graded/students/<name>/

Each submission runs in a private copy (the submission itself is never
written), inside a bubblewrap sandbox (``--sandbox``, see ``sandbox.py``), on
the course's own ``labutils``. ``--profile`` and every ``-p name value`` reach
each notebook's ``parameters`` cell. The test metrics in the report are computed
by the grader from each model's saved predictions and its own CIFAR-10 labels.
The exit status is 0 only if every notebook passed.

Written to ``--out`` (default ``graded/`` for one repository, ``DIR-graded/``
beside ``DIR`` for submissions, never inside a submission): the executed
notebooks, ``logs/`` (each child's output, capped), ``summary.json`` and
``report.md``; with ``--submissions`` the same per student in
``students/<name>/`` plus a combined student x notebook report. Summary and
report are rewritten after every notebook, marked incomplete until the end (and
after Ctrl-C or SIGTERM). Time limit (``--timeout``): per notebook, the whole
notebook, default ``config.GRADE_TIMEOUT_S``. Students graded at once
(``--jobs``): by default as many as have 2 CPU cores and
``config.GRADE_JOB_MEMORY_GB`` of free memory each (container limits included).

Modules: ``cli`` (options, the run, partial and final outputs), ``runner``
(private copy, papermill children, limits), ``sandbox`` (bubblewrap),
``collect`` (bounded reading, grader-computed metrics), ``report`` (Markdown).
"""
