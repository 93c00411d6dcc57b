# One verb per habit. `make test` is what CI runs.
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install install-test test lint typecheck bench demo lock

install:            ## the server and the SDK
	$(PYTHON) -m pip install -c requirements/server.txt -e ".[server]"

install-test:       ## test dependencies, including Debian's chromium
	PYTHON=$(PYTHON) scripts/install-test-deps.sh

test: install-test  ## install test dependencies, lint, then run the whole suite
	$(MAKE) lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint:               ## ruff, mypy --strict, import contracts
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench
	$(PYTHON) -m mypy
	lint-imports

bench:              ## benchmarks; record the figures in BENCHMARKS.md
	$(PYTHON) bench/bench_sdk_log.py
	$(PYTHON) bench/bench_ingest.py
	$(PYTHON) bench/bench_query.py
	$(PYTHON) bench/bench_drift_online.py
	$(PYTHON) bench/bench_detection.py --markdown
	$(PYTHON) bench/bench_alert_latency.py
	$(PYTHON) bench/bench_dashboard_api.py --markdown
	$(PYTHON) bench/bench_evaluators.py --markdown
	$(PYTHON) bench/bench_evaluator_runner.py --markdown
	$(PYTHON) bench/bench_otlp_ingest.py
	$(PYTHON) bench/bench_traces.py

demo: install       ## the server with live simulated traffic
	watchkeeper demo

lock:               ## re-pin requirements/*.txt to what is installed and tested
	uv pip compile pyproject.toml --extra test --extra embeddings --python-version 3.11 -o requirements/test.txt
	uv pip compile pyproject.toml --extra server --python-version 3.11 -o requirements/server.txt
