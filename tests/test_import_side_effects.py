"""``import labutils`` (any of its modules) changes nothing in the process: no environment
variable, no import hook.

Each module is imported in a fresh interpreter: one process imports the third-party packages
the modules use (whose own changes, such as TensorFlow's ``TF2_BEHAVIOR``, are not ours to
judge), then forks one child per module, which has imported nothing of ``labutils`` yet.
"""
from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import labutils

REPO = Path(__file__).resolve().parents[1]
MODULES = ["labutils"] + sorted(m.name for m in pkgutil.walk_packages(labutils.__path__, "labutils.")
                                if not m.name.endswith("__main__"))
PROBE = """
import importlib, json, os, sys
import cv2, keras, matplotlib.pyplot, nbformat, numpy, pandas, PIL.Image, sklearn.metrics, tensorflow

changes = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:  # the child: import one module, report what changed
        env, hooks = dict(os.environ), list(sys.meta_path)
        importlib.import_module(module)
        changed = {"env": sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
                   "meta_path": [repr(f) for f in sys.meta_path if f not in hooks]}
        os.write(write, json.dumps(changed).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as report:
        changes[module] = json.loads(report.read() or '{"error": "the import failed"}')
    os.wait()
print(json.dumps(changes))
"""


def test_importing_any_module_changes_no_environment_variable_and_no_import_hook():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", PROBE, *MODULES], env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    changes = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(changes) == set(MODULES)
    changed = {module: found for module, found in changes.items() if found != {"env": [], "meta_path": []}}
    assert not changed, f"importing these modules changed the process: {changed}"
