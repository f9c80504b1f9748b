# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false

.PHONY: setup demo test test-fast bench clean

setup:
	./scripts/setup.sh

demo: setup
	$(PY) -m labelaudit demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not review"

bench: setup
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build *.egg-info
