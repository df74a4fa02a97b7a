# seqcast: `make demo` runs the main job, `make test` runs the tests. Each creates or refreshes
# the virtual environment it needs, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv broker test test-fast demo bench bench-quick bench-faults bench-accuracy lint readme clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

# The tests and the demo talk to a real mosquitto; install it when it is missing.
broker:
	@if { ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; } || ! command -v minisign >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing mosquitto and minisign with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients minisign >/dev/null; \
		else \
			echo "mosquitto or minisign is missing: run 'sudo apt-get install mosquitto mosquitto-clients minisign'" >&2; exit 1; \
		fi; \
	fi
	@if ! command -v mosquitto_pub >/dev/null 2>&1; then \
		[ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null; \
	fi
	@# libfaketime: the clock tests run the daemon with a wrong wall clock
	@if ! command -v faketime >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }; \
	fi

test: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/seqcast-edge demo

bench: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run

bench-quick: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run --quick

bench-faults: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run --only faults

# Forecast quality on three public series, 3 seeds (about 50 minutes on 2 shared cores); needs
# the bench extra (LightGBM). ACCURACY_ARGS="--series vic_elec --seeds 1" for a part of it.
ACCURACY_ARGS ?=
bench-accuracy: venv
	$(BIN)/python -m bench.accuracy $(ACCURACY_ARGS)

# ruff over every Python folder; mypy (strict, see pyproject.toml) on the device package. mypy reads
# `seqcast.*` through a symlinked view, since the package is mapped from the top-level folders.
SOURCES   := edge train deploy tools tests bench
TYPECHECK := build/typecheck
lint: venv
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	@mkdir -p $(TYPECHECK)/seqcast
	@for d in edge train deploy tools; do ln -sfn ../../../$$d $(TYPECHECK)/seqcast/$$d; done
	cd $(TYPECHECK) && MYPYPATH=. ../../$(BIN)/mypy --config-file ../../pyproject.toml -p seqcast.edge

# Regenerate the command-line tables in README.md and deploy/README.md from the parsers
# (tests/test_cli.py checks them).
readme: venv
	$(BIN)/python -m tests.cli_tables

clean:
	rm -rf $(VENV) artifacts .pytest_cache build dist
