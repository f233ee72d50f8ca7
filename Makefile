# Market Sentiment Tracker. `make demo` and `make test` work from a fresh clone, offline
# (only the package index is needed, for the first install).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home
export SENTIMENT_DB ?= data/sentiment.duckdb

.PHONY: install lock demo test test-fast up up-postgres bench bench-quality lint clean postgres-server

install: $(VENV)/.installed

# Exactly what was tested: every package pinned with its hashes in requirements.lock (pip
# refuses anything else; --no-deps: the lock already holds every dependency, extras
# included), then the project itself without resolving again.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes \
	  --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e '.[dev]'
	touch $@

# After changing a dependency in pyproject.toml: pin it again (commit both files together).
lock: install
	$(BIN)/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

demo: install
	$(BIN)/python -m orchestration.demo

# The browser tests drive Debian's Chromium (Playwright's own browser download is never used).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

# The PostgreSQL store's tests start a throwaway server from Debian's package (its initdb and
# pg_ctl; the client package alone has neither).
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) postgres-server)
postgres-server:
	$(SUDO) apt-get install -y --no-install-recommends postgresql || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends postgresql)

test: install $(CHROMIUM) $(POSTGRES)
	$(BIN)/python -m pytest -q

# The unit tests only (no replay exchange, Dagster run or browser): the edit-and-rerun loop.
# `$(BIN)/python -m pytest -m "not slow"` is the wider quick loop.
test-fast: install
	$(BIN)/python -m pytest -q tests/unit

# Ports of `make up`, overridable on the command line when one is taken:
#   make up DAGSTER_PORT=3001 DASHBOARD_PORT=8502 REPLAY_PORT=8775 REPLAY_WS_PORT=8776
DAGSTER_PORT   ?= 3000
DASHBOARD_PORT ?= 8501
REPLAY_PORT    ?= 8765
REPLAY_WS_PORT ?= 8766
# The replay exchange's clock starts at REPLAY_START and runs REPLAY_SPEED times faster than
# the wall clock (120: one hourly bar closes every 30 s, the sensor's interval).
REPLAY_START ?= 2022-12-01
REPLAY_SPEED ?= 120
UP_DB ?= data/live.duckdb

# The parts of every `up` target (a sibling target for another profile, e.g. PostgreSQL,
# sets its own SENTIMENT_DB and DAGSTER_HOME and reuses these with the same ports):
# the replay exchange (REST and the public WebSocket: books, tickers and liquidations
# derived from the bundle, a book gap every 500 deltas to show the resync), the clients
# pointed at it unless the environment names other sources, the dashboard, the stream, and
# Dagster's UI with its daemon.
UP_REPLAY = $(BIN)/sentiment replay-server --port $(REPLAY_PORT) --now $(REPLAY_START) \
	  --speed $(REPLAY_SPEED) --ws-port $(REPLAY_WS_PORT) --gap-every 500
UP_SOURCES = BYBIT_BASE_URL=$${BYBIT_BASE_URL:-http://127.0.0.1:$(REPLAY_PORT)} \
	  BYBIT_WS_URL=$${BYBIT_WS_URL:-ws://127.0.0.1:$(REPLAY_WS_PORT)/v5/public/linear} \
	  FEAR_GREED_URL=$${FEAR_GREED_URL:-http://127.0.0.1:$(REPLAY_PORT)/fng/}
UP_DASHBOARD = $(BIN)/streamlit run dashboard/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(DASHBOARD_PORT) --browser.gatherUsageStats false
UP_DAGSTER = $(BIN)/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT) -w workspace.yaml
UP_BANNER = echo "Dagster UI http://127.0.0.1:$(DAGSTER_PORT)  dashboard http://127.0.0.1:$(DASHBOARD_PORT)  replay exchange http://127.0.0.1:$(REPLAY_PORT)"; \
	  echo "First start: bootstrap_job fills the database month by month (about a minute for the"; \
	  echo "bundled eleven months; Runs page of the Dagster UI), then live_update_job adds each new bar."

# Dagster UI and the dashboard against the replay exchange (README, "The live loop").
# live_update_sensor drives bootstrap_job on the first start, then live_update_job, which
# writes new rows to UP_DB as the bars close (the demo's database already holds the whole
# bundled year, so the live loop gets its own file). `sentiment stream` stages what it
# receives beside UP_DB; the live runs load it. Set BYBIT_BASE_URL=https://api.bybit.com,
# BYBIT_WS_URL=wss://stream.bybit.com/v5/public/linear and
# FEAR_GREED_URL=https://api.alternative.me/fng/ (and REPLAY_SPEED=0) for the real sources.
up: install
	$(UP_REPLAY) & \
	replay=$$!; \
	export SENTIMENT_DB=$(UP_DB) $(UP_SOURCES); \
	$(UP_DASHBOARD) & \
	dashboard=$$!; \
	$(BIN)/sentiment stream & \
	trap "kill $$replay $$dashboard $$!" EXIT INT TERM; \
	$(UP_BANNER); \
	$(UP_DAGSTER)

# `make up` with PostgreSQL for both the warehouse and the Dagster instance
# (deploy/dagster/dagster.yaml: runs, events and schedules in PostgreSQL, four runs at once,
# symbols updated in parallel). By default a server of this machine keeps its files in
# PG_DIR (data/postgres), listens on 127.0.0.1:PG_PORT and stops when this stops (installed from Debian's
# package when missing, like for the tests). PG_URL=postgresql://user:password@host:port uses
# an existing server instead. Either way the databases `sentiment` (the warehouse) and
# `dagster` (the instance) are created when missing; nothing else differs from `make up`.
PG_PORT ?= 5433
PG_URL ?=
PG_DIR ?= data/postgres
PG_DAGSTER_HOME ?= $(CURDIR)/data/dagster-postgres
up-postgres: install $(if $(PG_URL),,$(POSTGRES))
	@if [ -n "$(PG_URL)" ]; then url="$(PG_URL)"; else \
	  url=$$($(BIN)/python scripts/local_postgres.py start $(PG_DIR) --port $(PG_PORT)) || exit 1; \
	  trap "$(BIN)/python scripts/local_postgres.py stop $(PG_DIR)" EXIT; trap "exit 130" INT TERM; \
	fi; \
	$(BIN)/python scripts/local_postgres.py createdb $$url sentiment dagster || exit 1; \
	mkdir -p $(PG_DAGSTER_HOME) && cp deploy/dagster/dagster.yaml $(PG_DAGSTER_HOME)/; \
	eval "$$($(BIN)/python scripts/local_postgres.py dagster-env $$url dagster)"; \
	echo "PostgreSQL: $$url (databases sentiment and dagster)"; \
	$(MAKE) --no-print-directory up UP_DB=$$url/sentiment DAGSTER_HOME=$(PG_DAGSTER_HOME)

bench: install
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_clients.py
	$(BIN)/python bench/bench_demo.py
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_live.py
	$(BIN)/python bench/bench_hmm.py
	$(BIN)/python bench/bench_dashboard.py
	$(BIN)/python bench/bench_stream.py
	$(BIN)/python bench/bench_postgres.py
	$(BIN)/python bench/bench_parallel.py

# Regime quality over full recorded histories (not bundled: several MB). DATA is a directory
# with klines/, funding/ and fng/ as described in bench/bench_quality.py.
bench-quality: install
	@test -n "$(DATA)" || (echo "usage: make bench-quality DATA=path/to/recorded/data" && false)
	$(BIN)/python bench/bench_quality.py $(DATA)

# ruff everywhere, then mypy over the computation core (its scope: [tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data/*.duckdb data/*.wal data/postgres data/dagster-postgres dagster_home/storage dagster_home/history \
	       dagster_home/schedules dagster_home/logs .pytest_cache
