# `make lab`: run every notebook headlessly (papermill) into graded/, with a report; the profile is
# PROFILE= if given, else $LAB5_PROFILE, else the machine's (laptop without a GPU, full with one).
# `make test`: unit tests (the 25 slowest listed, to keep CI short) and nbval (smoke profile).
# `make release`: the student version (solutions stripped, no course tools) in release/.
# Both create or reuse the virtual environment in .venv; `make test` also installs bubblewrap
# (the grader's sandbox) and chromium (the browser the tests open the grader's HTML pages in)
# when they are missing and we are root (CI), else says how to.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?=

.PHONY: venv bwrap chromium lab test smoke release clean
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lab: venv
	@$(PY) -m grader run $(if $(PROFILE),--profile $(PROFILE))

smoke: venv
	$(PY) -m grader run --profile smoke

bwrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else \
	    echo "bubblewrap (bwrap), the grader's sandbox, is missing: sudo apt-get install bubblewrap." \
	         "Without it the grader runs submissions unisolated and says so; its tests skip (fail when CI=true)." >&2; \
	  fi; }

# Debian's chromium, driven by playwright with executable_path=/usr/bin/chromium (never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "chromium, the browser the tests open discussions.html and the feedback pages in, is missing:" \
	         "sudo apt-get install chromium. Without it those tests skip (fail when CI=true)." >&2; \
	  fi; }

test: venv bwrap chromium
	LAB5_PROFILE=smoke $(PY) -m pytest tests --durations=25
	LAB5_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env notebooks

release: venv
	$(PY) -m grader release --out release

clean:
	rm -rf graded release records/results records/logs records/checkpoints records/*.tfrecord \
	  records/.*.partial records/manifest.json img_out/*_cam.jpg img_out/*_cam_*.jpg
