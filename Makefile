# Two commands matter: `make run` and `make test` (see README.md). Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run examples test lint typecheck pytest bench clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime pyproject.toml
	$(PIP) -e '.[dev]'
	touch $@

# `run` starts the server with the demo config on SQLite (./vigil.db), and a stand-in cron job feeding its
# heartbeat; Ctrl-C stops both. VIGIL_ENVIRONMENT=development lets it start without a configured secret key.
run: $(VENV)/.runtime
	$(PY) examples/demo_job.py & trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	VIGIL_ENVIRONMENT=$${VIGIL_ENVIRONMENT:-development} $(VENV)/bin/vigil serve examples/demo.yaml

# What `make run` did before the server existed: the resilience analysis of our users' four outages.
examples: $(VENV)/.runtime
	$(VENV)/bin/vigil analyze examples/cels-2022.yaml
	$(VENV)/bin/vigil impact examples/cels-2022.yaml --fail vserver8
	$(VENV)/bin/vigil analyze examples/galaxy-2018.yaml
	$(VENV)/bin/vigil what-if examples/pythonanywhere-2014.yaml --state backup-server=degraded
	$(VENV)/bin/vigil analyze examples/queue-cluster-2019.yaml

test: $(VENV)/.dev lint typecheck pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check vigil tests benchmarks
	$(VENV)/bin/ruff format --check vigil tests benchmarks

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_impact.py
	$(PY) benchmarks/bench_analysis.py
	$(PY) benchmarks/bench_checks.py
	$(PY) benchmarks/bench_pings.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
