# `make lab`: run every notebook headlessly (papermill) into graded/, with a report.
# `make test`: unit tests and nbval (smoke profile).
# Both create or reuse the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= full

.PHONY: venv lab test smoke clean
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lab: venv
	$(PY) -m labutils.grade --profile $(PROFILE)

smoke: venv
	$(PY) -m labutils.grade --profile smoke

test: venv
	LAB5_PROFILE=smoke $(PY) -m pytest tests
	LAB5_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env notebooks

clean:
	rm -rf graded records/results records/logs records/checkpoints records/*.tfrecord records/manifest.json img_out/*_cam.jpg
