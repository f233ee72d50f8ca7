"""Many symbols: DuckDB (one writer) against PostgreSQL (runs and symbols side by side).

Twenty symbols (the two recorded ones and 18 derived ones, :mod:`derived`) x two intervals
(1h, 4h), served by the replay exchange from a derived bundle; PostgreSQL is a throwaway
server from Debian's package (``scripts/local_postgres.py``: fsync off, as in the tests).

1. ``backfill``: the bundled year through the real daemon (``dagster dev``): per symbol one
   ``market_data_job`` run and one ``sentiment_job`` run over the whole year (what a
   backfill of all symbols launches), all submitted at once through the webserver's GraphQL
   API. DuckDB runs against its instance in ``dagster_home/`` (its pool admits one writing
   step at a time); PostgreSQL against ``deploy/dagster/dagster.yaml`` with 2 and then 4
   runs at once. Wall time from the first submission to the last run's end; rows/s are the
   rows written (candles and the other market tables, then sentiment_history) per second.
2. ``live``: ``live_update_job`` in process for one new bar of 20 symbols after a month
   stored, on DuckDB (one session) and PostgreSQL (one connection per symbol, 1 and 2 at
   once); then ``latency``: bar close on the exchange -> committed row of every symbol
   through ``dagster dev`` (sensor polling every second), both backends.

``python bench/bench_parallel.py [backfill] [live] [latency] [--symbols N] [--from DAY]``
(all three, 20 symbols and the whole bundled year by default; ``--from 2022-10-01``
backfills the last quarter, a quarter of the time).
Skips with a message when PostgreSQL's server binaries are not installed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from derived import config_text, write_bundle  # noqa: E402
from local_postgres import create_database, postgres_binaries, throwaway_postgres  # noqa: E402

from orchestration.definitions import build_definitions  # noqa: E402
from replay.server import ReplayExchange  # noqa: E402
from sentiment.config import load_config  # noqa: E402
from sentiment.io.store import Store  # noqa: E402
from sentiment.services.live import LIVE_WORKERS, live_update  # noqa: E402
from sentiment.settings import get_settings  # noqa: E402

SYMBOLS = 20
LIVE_START = dt.datetime(2022, 12, 1)
BARS = 8


def _defs(exchange, db, config):
    settings = dataclasses.replace(get_settings(), db_path=db,
                                   bybit_base_url=exchange.base_url,
                                   fear_greed_url=exchange.fear_greed_url)
    return build_definitions(config, settings)


# -------------------------------------------------------------------------- backfill

#: Tables a backfill writes, and the job that writes them.
PHASES = {"market_data_job": ("candles", "funding_rates", "open_interest", "long_short_ratio"),
          "sentiment_job": ("sentiment_history",)}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _instance_yaml(home: Path, runs: int | None) -> None:
    """``dagster_home/dagster.yaml`` (runs None: DuckDB) or the PostgreSQL instance of
    ``deploy/dagster/`` admitting ``runs`` runs (and writing steps) at once."""
    home.mkdir(parents=True)
    if runs is None:
        text = (ROOT / "dagster_home" / "dagster.yaml").read_text()
    else:
        text = (ROOT / "deploy" / "dagster" / "dagster.yaml").read_text()
        text = text.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {runs}")
        text = text.replace("default_limit: 4", f"default_limit: {runs}")
    (home / "dagster.yaml").write_text(text)


class _DagsterDev:
    """``dagster dev`` (webserver, daemon, run queue) on a free loopback port, with the
    project's sensors and schedules (``automation``) or without."""

    def __init__(self, home: Path, env: dict[str, str], *, automation: bool = False):
        self.port = _free_port()
        self.home = home
        code = (["-w", str(ROOT / "workspace.yaml")] if automation else
                ["-f", str(ROOT / "bench" / "backfill_definitions.py"), "-d", str(ROOT)])
        self.proc = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", str(Path(sys.executable).parent / "dagster"),
             "dev", "-h", "127.0.0.1", "-p", str(self.port), *code],
            cwd=ROOT, env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=subprocess.DEVNULL, stderr=open(home / "dev.log", "w"))  # noqa: SIM115
        deadline = time.monotonic() + 180
        while True:
            try:
                repos = self.graphql("{ repositoriesOrError { ... on RepositoryConnection "
                                     "{ nodes { name location { name } } } } }")
                node = repos["repositoriesOrError"]["nodes"][0]
                break
            except (OSError, KeyError, IndexError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    log = (home / "dev.log").read_text()[-3000:]
                    raise RuntimeError(f"dagster dev did not come up:\n{log}") from None
                time.sleep(0.5)
        self.selector = {"repositoryLocationName": node["location"]["name"],
                         "repositoryName": node["name"]}

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """One request to the webserver's GraphQL API (what the UI itself sends)."""
        import json
        import urllib.request

        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            data = json.load(answer)
        if data.get("errors"):
            raise RuntimeError(f"GraphQL: {data['errors']}")
        return data["data"]

    def run_all(self, job: str, tag_sets: list[dict[str, str]]) -> float:
        """Submit one run per tag set at once; the seconds until the last one ended."""
        launch = ("mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { "
                  "__typename ... on LaunchRunSuccess { run { runId } } "
                  "... on PythonError { message } } }")
        start = time.perf_counter()
        pending = set()
        for tags in tag_sets:
            answer = self.graphql(launch, {"p": {
                "selector": {**self.selector, "jobName": job},
                "executionMetadata": {"tags": [{"key": k, "value": v}
                                               for k, v in tags.items()]}}})["launchRun"]
            if answer["__typename"] != "LaunchRunSuccess":
                raise RuntimeError(f"{job}: {answer}")
            pending.add(answer["run"]["runId"])
        while pending:
            for run_id in list(pending):
                status = self.graphql("query($id: ID!) { runOrError(runId: $id) { "
                                      "... on Run { status } } }", {"id": run_id}
                                      )["runOrError"].get("status")
                if status in ("FAILURE", "CANCELED"):
                    raise RuntimeError(f"{job} run {run_id} ended {status}: "
                                       + self.errors(run_id))
                if status == "SUCCESS":
                    pending.discard(run_id)
            time.sleep(0.25)
        return time.perf_counter() - start

    def errors(self, run_id: str) -> str:
        """The error messages of a run's events."""
        from dagster import DagsterEventType, DagsterInstance

        failed = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE,
                  DagsterEventType.ENGINE_EVENT}
        with DagsterInstance.from_config(str(self.home)) as instance:
            texts = [str(e.dagster_event.event_specific_data or e.message)
                     for e in instance.all_logs(run_id)
                     if e.dagster_event and e.dagster_event.event_type in failed]
        return "; ".join(texts)[-3000:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


def _environment(tmp: Path, server: str, key: str, runs: int | None, cfg: Path,
                 exchange: ReplayExchange) -> tuple[Path, dict[str, str]]:
    """DAGSTER_HOME and the environment of one setup (runs None: DuckDB)."""
    home = tmp / f"home-{key}"
    _instance_yaml(home, runs)
    env = {"SENTIMENT_CONFIG": str(cfg), "BYBIT_BASE_URL": exchange.base_url,
           "FEAR_GREED_URL": exchange.fear_greed_url}
    if runs is None:
        env["SENTIMENT_DB"] = str(tmp / f"{key}.duckdb")
    else:
        name = key.replace("-", "_")
        env["SENTIMENT_DB"] = create_database(server, name)
        create_database(server, f"{name}_dagster")
        env |= {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": server.rsplit(":", 1)[1],
                "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "",
                "DAGSTER_PG_DB": f"{name}_dagster"}
    return home, env


def bench_backfill(tmp: Path, bundle: Path, server: str, setups: list[int | None],
                   first: str = "2022-01-01") -> None:
    symbols = _symbols(bundle)
    cfg = tmp / "backfill.yaml"
    cfg.write_text(config_text(symbols, first))
    last = "2022-12-31"
    print(f"backfill {first}..{last}, {len(symbols)} symbols x 2 intervals, one run per "
          "symbol and job, all submitted at once through dagster dev:")
    with ReplayExchange(port=0, bundle_dir=bundle) as exchange:
        for runs in setups:
            name = "DuckDB, one writer (pool limit 1)" if runs is None else (
                f"PostgreSQL, {runs} runs at once")
            key = "duckdb" if runs is None else f"pg{runs}"
            home, env = _environment(tmp, server, f"backfill-{key}", runs, cfg, exchange)
            dev = _DagsterDev(home, env)
            try:
                dev.run_all("fear_greed_job", [{
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last}])
                figures = []
                for job, tables in PHASES.items():
                    took = dev.run_all(job, [{
                        "dagster/asset_partition_range_start": f"{first}|{s}",
                        "dagster/asset_partition_range_end": f"{last}|{s}"}
                        for s in symbols])
                    store = Store(env["SENTIMENT_DB"])
                    rows = sum(len(store.read(t)) for t in tables)
                    figures.append(f"{job} {took:6.1f} s, {rows:>9,} rows, "
                                   f"{rows / took:>8,.0f} rows/s")
            finally:
                dev.stop()
            print(f"  {name:<34} " + "; ".join(figures))


# ------------------------------------------------------------------------------ live


def bench_live(tmp: Path, bundle: Path, databases: dict[str, str]) -> None:
    """One new bar for 20 symbols x 2 intervals after a month stored, in process."""
    cfg = tmp / "live.yaml"
    cfg.write_text(config_text(_symbols(bundle), "2022-11-01"))
    config = load_config(cfg)
    print(f"live update in process, one new bar, {len(config.symbols)} symbols x "
          f"{len(config.intervals)} intervals, a month stored (median of {BARS} bars):")
    for name, (db, workers) in databases.items():
        with ReplayExchange(port=0, now=LIVE_START, bundle_dir=bundle) as exchange:
            defs = _defs(exchange, db, config)
            bybit = defs.resources["bybit"].client()
            fng = defs.resources["fear_greed_api"].client()
            store = Store(db)
            start = time.perf_counter()
            live_update(store, config, bybit, fng, workers=workers)
            bootstrap = time.perf_counter() - start
            times, clock = [], LIVE_START
            for _ in range(BARS):
                clock += dt.timedelta(hours=1)
                exchange.set_clock(clock + dt.timedelta(seconds=5))
                start = time.perf_counter()
                result = live_update(store, config, bybit, fng, workers=workers)
                times.append(time.perf_counter() - start)
                assert sum(result.bars.values()) >= len(config.symbols), result.bars
        print(f"  {name:<34} median {statistics.median(times):5.2f} s, max "
              f"{max(times):5.2f} s  (bootstrap {bootstrap:5.1f} s)")


SPEED = 360.0  # replay seconds per wall second: an hourly bar every 10 s


def bench_latency(tmp: Path, bundle: Path, server: str, setups: list[int | None]) -> None:
    """Bar close on the exchange -> the rows of every symbol committed, through the daemon:
    the sensor (polling every second) requests live_update_job, the queue starts it."""
    symbols = _symbols(bundle)
    cfg = tmp / "latency.yaml"
    cfg.write_text(config_text(symbols, "2022-11-15", **{
        "sensor_interval_seconds: 30": "sensor_interval_seconds: 1"}))
    config = load_config(cfg)
    start_clock = LIVE_START + dt.timedelta(seconds=30)
    print(f"bar close on the exchange -> committed rows of all {len(symbols)} symbols, "
          f"through dagster dev (sensor every 1 s, replay clock {SPEED:.0f}x):")
    for runs in setups:
        with ReplayExchange(port=0, now=start_clock, bundle_dir=bundle) as exchange:
            key = "duckdb" if runs is None else f"pg{runs}"
            home, env = _environment(tmp, server, f"latency-{key}", runs, cfg, exchange)
            store = Store(env["SENTIMENT_DB"], lock_timeout=30)
            defs = _defs(exchange, env["SENTIMENT_DB"], config)
            live_update(store, config, defs.resources["bybit"].client(),
                        defs.resources["fear_greed_api"].client())  # the bootstrap
            dev = _DagsterDev(home, env, automation=True)
            try:
                exchange.set_clock(start_clock, speed=SPEED)
                wall0 = time.monotonic()
                latencies = []
                for k in range(1, BARS + 1):
                    close = LIVE_START + dt.timedelta(hours=k)
                    close_wall = wall0 + (close - start_clock).total_seconds() / SPEED
                    deadline = close_wall + 120
                    while _committed(store, close) < len(symbols):
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"no rows for the bar closing at {close}")
                        time.sleep(0.1)
                    latencies.append(time.monotonic() - close_wall)
            finally:
                dev.stop()
        name = "DuckDB (one session)" if runs is None else (
            f"PostgreSQL ({LIVE_WORKERS} symbols at once)")
        print(f"  {name:<34} median {statistics.median(latencies):5.1f} s, max "
              f"{max(latencies):5.1f} s over {len(latencies)} bars")


def _committed(store: Store, close: dt.datetime) -> int:
    """How many symbols have their 1h row for the bar closing at ``close``."""
    try:
        frame = store.query("SELECT count(*) AS n FROM sentiment_history WHERE interval = "
                            "'60' AND timestamp = ?", [close])
    except FileNotFoundError:
        return 0
    return int(frame["n"].iloc[0])


def _symbols(bundle: Path) -> list[str]:
    import pandas as pd

    return list(dict.fromkeys(pd.read_csv(bundle / "candles_60.csv.gz", usecols=["symbol"],
                                          compression="gzip")["symbol"]))


def main() -> None:
    args = sys.argv[1:]
    n = SYMBOLS
    if "--symbols" in args:
        at = args.index("--symbols")
        n = int(args[at + 1])
        del args[at:at + 2]
    first = "2022-01-01"
    if "--from" in args:
        at = args.index("--from")
        first = args[at + 1]
        del args[at:at + 2]
    parts = set(args) or {"backfill", "live", "latency"}
    bin_dir = postgres_binaries()
    if bin_dir is None:
        print("bench_parallel: skipped, no PostgreSQL server binaries under "
              "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
        return
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as name, \
            throwaway_postgres(bin_dir) as server:
        tmp = Path(name)
        bundle = tmp / "bundle"
        write_bundle(bundle, n)
        if "backfill" in parts:
            bench_backfill(tmp, bundle, server, [None, 2, 4], first)
        if "latency" in parts:
            bench_latency(tmp, bundle, server, [None, 4])
        if "live" in parts:
            bench_live(tmp, bundle, {
                "DuckDB (one session)": (str(tmp / "live.duckdb"), 1),
                "PostgreSQL, 1 symbol at a time": (create_database(server, "live1"), 1),
                "PostgreSQL, 2 symbols at once": (create_database(server, "live2"), 2),
            })


if __name__ == "__main__":
    main()
