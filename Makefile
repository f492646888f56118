# Two commands set everything up: `make run` (the app on the bundled model) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint system-deps package package-smoke clean

# System libraries: speech synthesis and sox for test audio, PortAudio/PulseAudio for the microphone,
# Xvfb and Qt's xcb libraries for the window. Skipped when not root (install them yourself then).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $$(cat packaging/apt-packages.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: system-deps $(STAMP)
	$(BIN)/verbatim $(ARGS)

test: system-deps $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check desktop tests $(wildcard benchmarks packaging)
	$(BIN)/mypy

# The frozen app, dist/verbatim/verbatim (README, "Building the app"); package-smoke runs it headless.
package: system-deps $(STAMP)
	$(BIN)/python -m pip install -q -e '.[package]'
	$(BIN)/python packaging/build.py

package-smoke:
	$(BIN)/python packaging/smoke.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache
