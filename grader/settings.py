"""The grader's own settings: time limits, the resources of one grading job, the Kubernetes defaults.

The lab's settings (paths, profiles) are :mod:`labutils.config`; the course's facts
(notebooks, models, deliverables) are :mod:`labutils.course`. What is here only the
course's grader uses, so students never receive it.
"""
from __future__ import annotations

GRADED = "graded"  # one repository's outputs, inside it (never copied into the sandbox)
# Whole-notebook time limit per profile (seconds); `--timeout` overrides it.
TIMEOUT_S = {"full": 3 * 3600, "laptop": 3600, "smoke": 600}
# Memory one grading job (one student's notebooks, run in turn) may take: --memory-gb's default (a control
# group per student), one pod's memory, and (with the disk below, held in memory) --jobs' default.
JOB_MEMORY_GB = {"full": 6.0, "laptop": 4.0, "smoke": 2.0}
# Processes and threads one student's notebooks may run at once (--max-processes; the kernel's pids
# controller counts threads: TensorFlow starts a few per core).
MAX_PROCESSES = {"full": 1024, "laptop": 512, "smoke": 512}
# The student's work folder (private copy, HOME, TMPDIR): a tmpfs of this size (--disk-gb), held in memory.
DISK_GB = {"full": 4.0, "laptop": 2.0, "smoke": 1.0}
# Free disk the grader wants where its outputs go, per student (executed notebooks and logs are capped at
# 20 MB each): less, and it warns before grading.
OUTPUT_RESERVE_MB = 200
# A student's reserved folder (a tmpfs of its own, beside the --disk-gb one): papermill's executed notebook
# (parsed up to 200 MB) and the kernel's runtime files, so a full disk does not stop the next notebook.
RESERVED_MB = 256
JOB_CPUS = 2  # CPU cores one grading job gets (--jobs' default; one pod's request)

# Kubernetes (python -m grader k8s): one pod grades one student, like one local job.
POD_GPUS = {"full": 1, "laptop": 0, "smoke": 0}  # nvidia.com/gpu per pod
POD_SETUP_S = 600  # copying the submission and starting up, on top of the notebooks' time limits
K8S_PARALLELISM = 10  # pods at once unless --parallelism says otherwise
K8S_JOB_NAME = "lab5-grade"
SUBMISSIONS_CLAIM = "lab5-submissions"  # PersistentVolumeClaim holding the student folders
RESULTS_CLAIM = "lab5-results"  # PersistentVolumeClaim where each pod publishes <student>/
