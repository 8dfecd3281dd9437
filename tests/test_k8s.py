"""The Kubernetes Job that grades a class: valid against the Kubernetes API schema (offline, with
kubernetes-validate's bundled schemas), one pod per student in the local grading order, and the pod
is a sandbox. No cluster is used: these tests check the manifest and run its scripts locally."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from labutils import config, course
from grader import k8s as grade_k8s, settings

REPO = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.37.0"  # the schemas kubernetes-validate ships; a cluster of that version accepts the manifest


def make_class(folder: Path, names: list[str]) -> Path:
    for name in names:
        (folder / name / "notebooks").mkdir(parents=True)
    return folder


def generate(submissions: Path, *args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "grader", "k8s", "--submissions", str(submissions),
                          "--image", "registry.example.org/lab5:2026", *args],
                         capture_output=True, text=True, check=True).stdout
    return list(yaml.safe_load_all(out))


def validate(documents: list[dict]) -> None:
    for doc in documents:
        # strict: an unknown or misspelt field is an error, not silently dropped by the API server
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def job_of(documents: list[dict]) -> dict:
    return next(doc for doc in documents if doc["kind"] == "Job")


def pick(documents: list[dict], index: int) -> str:
    """Run the pod's own student-picking command on the ConfigMap's class list, as a pod with that index would."""
    class_list = next(doc for doc in documents if doc["kind"] == "ConfigMap")["data"][grade_k8s.STUDENTS_FILE]
    script = job_of(documents)["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    command = next(line for line in script.splitlines() if line.startswith("student="))
    command = command.replace("python -c", f"{sys.executable} -c").replace(f"/class/{grade_k8s.STUDENTS_FILE}", "-")
    command = command.replace("open(sys.argv[1])", "sys.stdin")
    return subprocess.run(["sh", "-c", f'{command}\nprintf %s "$student"'], input=class_list, text=True,
                          env={"JOB_COMPLETION_INDEX": str(index), "PATH": "/usr/bin:/bin"},
                          capture_output=True, check=True).stdout


@pytest.mark.parametrize("size", [1, 500])
def test_manifest_is_valid_for_one_and_for_500_students(tmp_path, size):
    names = [f"student{i:03d}" for i in range(size)]
    documents = generate(make_class(tmp_path, names), "--profile", "full")
    validate(documents)
    job = job_of(documents)["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == size
    assert job["parallelism"] == min(size, settings.K8S_PARALLELISM)
    assert json.loads(documents[0]["data"][grade_k8s.STUDENTS_FILE]) == names


def test_each_index_grades_the_student_a_local_run_grades_in_that_place(tmp_path):
    names = ["zoe", "Alice", "bob smith", "émile", "_x", "0042"]
    folder = make_class(tmp_path, names)
    (folder / ".hidden").mkdir()
    (folder / "notes.txt").write_text("not a student")
    (folder / "linked").symlink_to(folder / "zoe")  # a link is not a student of its own
    documents = generate(folder, "--profile", "smoke")
    validate(documents)
    local_order = sorted(names)
    assert grade_k8s.students(folder) == local_order
    assert job_of(documents)["spec"]["completions"] == len(local_order)
    assert [pick(documents, i) for i in range(len(local_order))] == local_order


def test_the_pod_is_the_sandbox(tmp_path):
    documents = generate(make_class(tmp_path, ["a", "b"]), "--profile", "full")
    job = job_of(documents)["spec"]
    pod = job["template"]["spec"]
    assert job["backoffLimit"] == 0  # a failing notebook is a grade, not something to retry
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["activeDeadlineSeconds"] == (settings.TIMEOUT_S["full"] * len(course.NOTEBOOKS)
                                            + settings.POD_SETUP_S)
    for container in pod["initContainers"] + pod["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] != 0
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
    grade, publish = pod["initContainers"][0], pod["containers"][0]
    mounts = {m["name"]: m for m in grade["volumeMounts"]}
    assert mounts["submissions"]["readOnly"] and "results" not in mounts  # student code never sees the results
    assert grade["resources"]["limits"] == {"cpu": str(settings.JOB_CPUS), "memory": "6Gi",
                                            "nvidia.com/gpu": "1"}
    assert "grader" not in publish["command"][2]  # publishing runs no student code
    policy = next(doc for doc in documents if doc["kind"] == "NetworkPolicy")["spec"]
    assert policy["egress"] == [] and "Egress" in policy["policyTypes"]
    assert policy["podSelector"]["matchLabels"] == job["template"]["metadata"]["labels"]


def test_smoke_pods_ask_for_no_gpu(tmp_path):
    documents = generate(make_class(tmp_path, ["a"]), "--profile", "smoke")
    grade = job_of(documents)["spec"]["template"]["spec"]["initContainers"][0]
    assert "nvidia.com/gpu" not in grade["resources"]["limits"]


def test_publish_script_copies_the_graded_outputs_under_the_student_name(tmp_path):
    documents = generate(make_class(tmp_path / "class", ["bob smith"]), "--profile", "smoke")
    script = job_of(documents)["spec"]["template"]["spec"]["containers"][0]["command"][2]
    (tmp_path / "class-list").mkdir()
    (tmp_path / "class-list" / grade_k8s.STUDENTS_FILE).write_text(documents[0]["data"][grade_k8s.STUDENTS_FILE])
    (tmp_path / "scratch" / "out").mkdir(parents=True)
    (tmp_path / "scratch" / "out" / "summary.json").write_text("{}")
    (tmp_path / "results" / "bob smith").mkdir(parents=True)
    (tmp_path / "results" / "bob smith" / "stale.txt").write_text("from an earlier run")
    local = (script.replace("python -c", f"{sys.executable} -c").replace("/class/", f"{tmp_path}/class-list/")
             .replace("/scratch/", f"{tmp_path}/scratch/").replace('"/results/', f'"{tmp_path}/results/'))
    subprocess.run(["sh", "-c", local], env={"JOB_COMPLETION_INDEX": "0", "PATH": "/usr/bin:/bin"}, check=True)
    assert sorted(p.name for p in (tmp_path / "results" / "bob smith").iterdir()) == ["summary.json"]


def test_shipped_example_is_what_the_command_writes(tmp_path):
    """deploy/k8s/job.example.yaml is generated, never edited by hand: it must match the command's output."""
    folder = make_class(tmp_path, ["alice", "bob", "carol"])
    expected = grade_k8s.to_yaml(grade_k8s.manifests(grade_k8s.students(folder), image="registry.example.org/lab5:2026",
                                                      profile="full"))
    shipped = (REPO / "deploy" / "k8s" / "job.example.yaml").read_text()
    body = "".join(line for line in shipped.splitlines(keepends=True) if not line.startswith("# "))
    assert body == expected, "deploy/k8s/job.example.yaml is stale: regenerate it (see deploy/k8s/README.md)"
