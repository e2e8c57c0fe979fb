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

.PHONY: venv demo test lint typecheck bench fuzz browser-deps proxy-tool compose-tool clean

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

# Debian's caddy validates deploy/Caddyfile and runs the TLS proxy tests (tests/test_tls_proxy.py).
proxy-tool:
	@if command -v caddy >/dev/null && command -v openssl >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's caddy and openssl for the TLS proxy tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy openssl >/dev/null; \
	else \
		echo "The TLS proxy tests need Debian's caddy and openssl:"; \
		echo "    sudo apt-get install caddy openssl"; exit 1; \
	fi

demo: venv
	@bash scripts/demo.sh "$(DEMO_BEDS)" "$(HOST)" "$(MONITOR_PORT)" "$(PANEL_PORT)"

# Four workers, one test module each at a time (--dist loadfile keeps a module's servers
# in one process): on 2 cores the suite used about 62% of the CPU with two, because most
# tests wait on real servers and clocks; with four it is CPU-bound, and six were no faster.
# The long modules go first (tests/conftest.py LONG_MODULES). The 15 slowest tests are
# named at the end, so a test that grows slow is seen. Bytecode is written even where the
# machine sets PYTHONDONTWRITEBYTECODE: the CLI runs the tests exec would otherwise compile
# the monitor's source each time (a third of a `python -m monitor add-user`).
test: venv browser-deps proxy-tool compose-tool
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest -q -p no:cacheprovider -n 4 --dist loadfile --durations=15

# ruff and mypy run before the tests in CI (.ci/run), not inside pytest.
lint: venv
	$(VENV)/bin/ruff check monitor dashboard simulators tests bench
	# The layers of docs/architecture.md: pyproject.toml's [tool.importlinter] contracts.
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff format --check monitor dashboard simulators tests bench

# mypy --strict: the settings (strict = true) are pyproject.toml's [tool.mypy].
typecheck: venv
	$(VENV)/bin/mypy monitor dashboard

bench: venv browser-deps
	$(PY) -m bench

# The larger API fuzz (docs/api.md): schemathesis's CLI, every phase, 80 examples an operation,
# against a live monitor on SQLite. FUZZ_ARGS="--db postgresql://... --examples N" to vary;
# other arguments go to `schemathesis run` (e.g. --report har).
FUZZ_ARGS ?=
fuzz: venv
	$(PY) scripts/fuzz.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) $(COMPOSE_VENV) .pytest_cache .mypy_cache .ruff_cache

# docker-compose 1.29.2 validates docker-compose.yml without a Docker engine (there is none
# here). Its own pins clash with ours (PyYAML<6, jsonschema<4), so it lives in its own venv.
COMPOSE_VENV := .venv-compose
COMPOSE_STAMP := $(COMPOSE_VENV)/.installed
compose-tool: $(COMPOSE_STAMP)
$(COMPOSE_STAMP):
	$(PYTHON) -m venv $(COMPOSE_VENV)
	$(COMPOSE_VENV)/bin/pip install -q "PyYAML==6.0.3" "python-dotenv==0.21.1" "requests==2.32.3" \
		"docopt==0.6.2" "texttable==1.7.0" "jsonschema==3.2.0" "pyrsistent==0.20.0" "six==1.17.0" \
		"dockerpty==0.4.1" "distro==1.9.0" "websocket-client==0.59.0" "docker==7.1.0" "setuptools<81"
	$(COMPOSE_VENV)/bin/pip install -q --no-deps "docker-compose==1.29.2"
	touch $(COMPOSE_STAMP)
