"""The Kubernetes Indexed Job that grades a whole class, one student per pod.

``python -m grader k8s --submissions DIR --image IMAGE --profile full > job.yaml``
writes four documents for ``kubectl apply -f job.yaml``:

* a ConfigMap holding the class list: the student folders of ``DIR`` in the
  order a local ``--submissions`` run grades them (:func:`students`);
* a NetworkPolicy that denies the grading pods all traffic, in and out;
* the Job: ``completionMode: Indexed`` with one completion per student. Pod
  ``i`` grades student ``i`` of the list (``$JOB_COMPLETION_INDEX``);
* nothing else: the submissions and results volumes are the cluster's
  (PersistentVolumeClaims named by ``--submissions-claim`` and ``--results-claim``).

Each pod is its own sandbox. Its init container ``grade`` copies the student's
folder from the read-only submissions volume into a private scratch volume and
grades it there (student code runs only in this container, which cannot
reach the results volume). Then the container ``publish``, which runs no
student code, copies the grader's outputs to ``<results>/<student>/``, where
``python -m grader merge`` reads them. Both run as a non-root user
with every capability dropped, no privilege escalation, no service-account
token and a read-only root file system; ``backoffLimit: 0`` (a failing notebook
is a grade, not something to retry) and ``activeDeadlineSeconds`` from the
notebooks' time limits in :mod:`grader.settings`.
"""
from __future__ import annotations

import json
import math
import re
import shlex
import sys
from pathlib import Path

import yaml

from grader import settings, students as classes
from labutils import config, course

# Kubernetes object names: lower-case DNS labels.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
STUDENTS_FILE = "students.json"
RUN_AS = 1000  # any non-root uid: the course image's code and Keras cache are world-readable


def students(submissions: Path) -> list[str]:
    """The student folders of ``submissions``: exactly those, in the order, a local ``--submissions`` run grades."""
    return list(classes.submissions(Path(submissions).resolve(), None)[0])


def deadline_seconds(profile: str) -> int:
    """``activeDeadlineSeconds`` of one pod: every course notebook's time limit, plus the setup time."""
    return int(settings.TIMEOUT_S[profile] * len(course.NOTEBOOKS) + settings.POD_SETUP_S)


def resources(profile: str) -> dict:
    """Requests and limits of one grading pod (one student's notebooks, run in turn)."""
    amounts = {"cpu": str(settings.JOB_CPUS), "memory": f"{settings.JOB_MEMORY_GB[profile]:g}Gi"}
    if settings.POD_GPUS[profile]:
        amounts["nvidia.com/gpu"] = str(settings.POD_GPUS[profile])
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pick(index: str) -> str:
    """Shell: the student at ``index`` of the class list (JSON, so any folder name is read back exactly)."""
    return (f"python -c 'import json, sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])])' "
            f"/class/{STUDENTS_FILE} {index}")


def _security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _scripts(profile: str) -> tuple[str, str]:
    """The shell scripts of the pod's two containers: ``grade`` (runs student code) and ``publish`` (does not)."""
    grade_script = "\n".join([
        "set -eu",
        f'student="$({_pick("$JOB_COMPLETION_INDEX")})"',
        'mkdir -p /scratch/home /scratch/mpl /scratch/submission /scratch/out',
        # A private, writable copy: the submissions volume itself stays read-only.
        'cp -R "/submissions/$student/." /scratch/submission/',
        # The grader's exit status (1: a notebook failed) is in its summary; the pod still publishes it.
        f'LAB5_ROOT=/scratch/submission python -m grader run --profile {shlex.quote(profile)} '
        '--sandbox none --pod-limits --out /scratch/out || echo "grader exit status $?" > /scratch/out/exit_status.txt',
    ])
    publish_script = "\n".join([
        "set -eu",
        f'student="$({_pick("$JOB_COMPLETION_INDEX")})"',
        'rm -rf "/results/$student.partial" && mkdir -p "/results/$student.partial"',
        'cp -R /scratch/out/. "/results/$student.partial/"',
        'rm -rf "/results/$student" && mv "/results/$student.partial" "/results/$student"',
    ])
    return grade_script, publish_script


def pod_template(*, image: str, profile: str, name: str, labels: dict, submissions_claim: str,
                 results_claim: str) -> dict:
    """The pod that grades one student: init container ``grade``, then container ``publish``."""
    env = [{"name": "HOME", "value": "/scratch/home"}, {"name": "MPLCONFIGDIR", "value": "/scratch/mpl"},
           {"name": "LAB5_PROFILE", "value": profile}]
    grade_script, publish_script = _scripts(profile)
    class_volume = {"name": "class", "mountPath": "/class", "readOnly": True}
    scratch = {"name": "scratch", "mountPath": "/scratch"}
    spec = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": deadline_seconds(profile),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "fsGroup": RUN_AS},
        "initContainers": [{
            "name": "grade", "image": image, "command": ["sh", "-c", grade_script], "env": env,
            "workingDir": "/scratch", "resources": resources(profile), "securityContext": _security(),
            "volumeMounts": [class_volume, scratch, {"name": "tmp", "mountPath": "/tmp"},
                             {"name": "submissions", "mountPath": "/submissions", "readOnly": True}],
        }],
        "containers": [{
            "name": "publish", "image": image, "command": ["sh", "-c", publish_script], "env": env[:1],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "256Mi"}},
            "securityContext": _security(),
            "volumeMounts": [class_volume, {**scratch, "readOnly": True}, {"name": "results", "mountPath": "/results"}],
        }],
        "volumes": [
            {"name": "class", "configMap": {"name": f"{name}-class"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "submissions", "persistentVolumeClaim": {"claimName": submissions_claim, "readOnly": True}},
            {"name": "results", "persistentVolumeClaim": {"claimName": results_claim}},
        ],
    }
    if settings.POD_GPUS[profile]:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": labels}, "spec": spec}


def manifests(class_list: list[str], *, image: str, profile: str, name: str = settings.K8S_JOB_NAME,
              submissions_claim: str = settings.SUBMISSIONS_CLAIM, results_claim: str = settings.RESULTS_CLAIM,
              parallelism: int | None = None, namespace: str | None = None) -> list[dict]:
    """The ConfigMap, NetworkPolicy and Indexed Job that grade ``class_list`` (see the module docstring)."""
    if not class_list:
        raise ValueError("no student folders: nothing to grade")
    if not _NAME.match(name):
        raise ValueError(f"job name {name!r}: use lower-case letters, digits and '-' (at most 42 characters)")
    if profile not in config.PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {sorted(config.PROFILES)}")
    meta = {"namespace": namespace} if namespace else {}
    labels = {"app.kubernetes.io/name": "lab5-grader", "app.kubernetes.io/instance": name}
    pod = pod_template(image=image, profile=profile, name=name, labels=labels,
                       submissions_claim=submissions_claim, results_claim=results_claim)
    parallel = min(parallelism or settings.K8S_PARALLELISM, len(class_list))
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-class", **meta, "labels": labels},
         "data": {STUDENTS_FILE: json.dumps(class_list, indent=1, ensure_ascii=False) + "\n"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": f"{name}-no-network", **meta, "labels": labels},
         "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [], "egress": []}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, **meta, "labels": labels},
         "spec": {"completionMode": "Indexed", "completions": len(class_list),
                  "parallelism": parallel, "backoffLimit": 0,
                  # The whole class: as many rounds of pods as parallelism needs, each within its deadline.
                  "activeDeadlineSeconds": deadline_seconds(profile) * math.ceil(len(class_list) / parallel),
                  "ttlSecondsAfterFinished": 7 * 24 * 3600, "template": pod}},
    ]


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: no anchors or aliases, multi-line strings (scripts, the class list) as blocks."""

    def ignore_aliases(self, data) -> bool:
        return True


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def to_yaml(documents: list[dict]) -> str:
    """The documents as one YAML stream, ``---`` between them, in the order given."""
    return "---\n".join(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000) for doc in documents)


def main(args, error) -> int:
    """``python -m grader k8s``: the manifests for the class of ``args.submissions`` on standard output."""
    if not args.submissions.is_dir():
        error(f"--submissions {args.submissions}: no such folder")
    if args.parallelism is not None and args.parallelism < 1:
        error("--parallelism must be positive")
    try:
        documents = manifests(students(args.submissions), image=args.image, profile=args.profile, name=args.name,
                              submissions_claim=args.submissions_claim, results_claim=args.results_claim,
                              parallelism=args.parallelism, namespace=args.namespace)
    except ValueError as err:
        error(str(err))
    sys.stdout.write(to_yaml(documents))
    return 0
