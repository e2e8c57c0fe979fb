# Vigil: `make demo` runs a six-bed demo; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := ./data
DEMO_DB := sqlite:///$(DATA)/demo.db
DEMO_BEDS ?= 6
MONITOR_PORT ?= 8000
PANEL_PORT ?= 8050
HOST ?= 127.0.0.1

.PHONY: venv demo test lint typecheck bench browser-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# Pinned: every package and version comes from requirements.lock.
	$(VENV)/bin/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium and chromium-driver for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "The browser tests need Debian's chromium and chromium-driver:"; \
		echo "    sudo apt-get install chromium chromium-driver"; exit 1; \
	fi

demo: venv
	@bash scripts/demo.sh "$(DEMO_BEDS)" "$(HOST)" "$(MONITOR_PORT)" "$(PANEL_PORT)"

test: venv browser-deps
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check monitor dashboard simulators tests
	$(VENV)/bin/ruff format --check monitor dashboard simulators tests

typecheck: venv
	$(VENV)/bin/mypy monitor

bench: venv browser-deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
