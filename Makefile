# make demo: train on the built-in digits and write samples/ and logs/.  make test: the whole test suite.
# make test-fast: the tests that run in process only (not those marked process: signals, kill -9, workers).
# make lint: ruff, with the rules of pyproject.toml. make docs: docs/flags.md from the flags' definitions.
# All create .venv and install into it first.
# GPU: make demo REQUIREMENTS=requirements-gpu.txt
PYTHON ?= python3
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint docs clean

$(VENV)/.installed: $(REQUIREMENTS) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQUIREMENTS) -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) main.py --train --dataset digits --epoch 2 --sample_freq 50
	$(PY) main.py --dataset digits
	@echo "Samples: samples/digits_28_28/   TensorBoard: $(VENV)/bin/tensorboard --logdir logs"

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist worksteal tests  # two workers, each taking on the other's queue when idle

docs: $(VENV)/.installed
	$(PY) main.py --markdown_help > docs/flags.md
	$(PY) download.py --markdown_help >> docs/flags.md

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not process" tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
