# skyscene — the two quick-start commands: `make demo` and `make test`.
# Each creates .venv with plain pip (uv/poetry miss the local wheel store) and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skyscene-installed
DEMO_DIR ?= demo_output

.PHONY: demo test lint bench docs clean venv

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/skyscene demo $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -E -q docs docs/_build/html
	@echo "API reference: docs/_build/html/index.html"

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) docs/_build .pytest_cache .mypy_cache .ruff_cache
