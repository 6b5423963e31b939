# Every target bootstraps what it needs: uv (via pip when absent), then the locked environment.
# A fresh machine has python3, pip and make; nothing else is assumed.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
ORACLE_DIR ?= $(abspath ../shared/oracle)
ORACLE_VENV ?= /tmp/ltx-oracle-venv

.PHONY: bootstrap sync test test-slow test-browser lint demo oracle clean

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || { echo "[make] installing uv with pip"; $(PYTHON) -m pip install -q uv; }

sync: bootstrap
	@$(UV) sync --frozen --quiet --extra ui --extra quantization

lint: sync
	$(UV) run --frozen --extra ui --extra quantization ruff check src tests

# The oracle venv (official ltx-core, its own interpreter) is built when ../shared/oracle exists;
# parity tests skip with a reason otherwise.
oracle:
	@if [ -f "$(ORACLE_DIR)/setup.sh" ]; then \
		bash "$(ORACLE_DIR)/setup.sh" "$(ORACLE_VENV)" >/dev/null || echo "[make] oracle venv could not be built; parity tests will skip"; \
	else echo "[make] no oracle at $(ORACLE_DIR); parity tests will skip"; fi

PYTEST_ENV = LTX_ORACLE_DIR="$(ORACLE_DIR)" LTX_ORACLE_PYTHON="$(ORACLE_VENV)/bin/python"
PYTEST = $(PYTEST_ENV) $(UV) run --frozen --extra ui --extra quantization pytest

# The suite without the end-to-end cases marked slow (real multi-process runs, kill loops, 100-step curves, the demo)
# and without the browser tests (test-browser).
test: lint oracle
	$(PYTEST) -m "not slow and not browser" --durations=25

# The slow end-to-end cases; CI (.ci/run) runs them after `make test`.
test-slow: sync oracle
	$(PYTEST) -m slow

# The web UI in headless chromium (Playwright driving Debian's chromium by its path; no browser download): installs
# chromium when absent (apt-get, as root) and the `ui` extra, then runs the tests marked browser (a few minutes).
# LTX_UI_SCREENSHOTS=docs/ui make test-browser refreshes the screenshots in docs/ui/.
CHROMIUM ?= /usr/bin/chromium
test-browser: bootstrap
	@[ -x "$(CHROMIUM)" ] || { echo "[make] installing Debian's chromium"; \
		apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
		|| echo "[make] chromium could not be installed: the browser tests will skip"; }
	@$(UV) sync --frozen --quiet --extra ui --extra quantization
	$(PYTEST_ENV) $(UV) run --frozen --extra ui --extra quantization pytest -m browser

demo: sync
	$(UV) run --frozen --extra ui --extra quantization ltx-trainer demo

clean:
	rm -rf .venv outputs .pytest_cache .ruff_cache
