# The two commands the README documents:
#   make run   - set up a virtualenv, install, and start the engine with demo data
#   make test  - set up a virtualenv, install with test extras, and run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install clean screenshots

$(BIN)/playbook: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/playbook

install: $(BIN)/playbook

run: install
	$(BIN)/playbook up --demo

# Two pytest-xdist workers, one test file each at a time (files share their fixtures): the
# suite waits on servers and browsers as much as it computes, so two cores run it in about
# three quarters of the time one worker takes. The slowest tests are listed at the end, to
# keep the suite under 10 minutes on 2 cores.
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The report pages' screenshots in docs/reports.md (needs chromium and chromium-driver).
screenshots: install
	mkdir -p docs/images
	UI_SCREENSHOTS=docs/images $(BIN)/pytest -q tests/web/test_reports.py -k screenshots

clean:
	rm -rf $(VENV) .playbook .pytest_cache .hypothesis .mypy_cache
