"""Speed of the near-real-time loop (issue targets in brackets).

1. In-process ``live_update_job`` time for one new bar, after the bootstrap, Dagster run
   included, with a month and with eleven months stored [<= 0.5 s].
2. Latency from a bar's close on the replay exchange to its committed row, through the
   real ``dagster dev`` daemon, sensor (polling every second, DESIGN 8.9) and run
   [median <= 5 s]. The replay clock runs 360x (an hourly bar every 10 s).
3. Backfill of ``sentiment_history`` over the whole bundled window (``sentiment_job``).
4. The first start of `make up` in process (an empty database, the replay clock at
   2022-12-01, history from 2022-01-01): when a reader in another process first sees
   ``sentiment_history`` rows, the longest write-lock hold and the longest wait of that
   reader, for one live update over everything (the earlier first run) and for
   ``bootstrap_job`` then ``live_update_job``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster import DagsterInstance  # noqa: E402

from orchestration.definitions import build_definitions  # noqa: E402
from replay.server import ReplayExchange  # noqa: E402
from sentiment.config import load_config  # noqa: E402
from sentiment.io.sources.bybit import BybitClient  # noqa: E402
from sentiment.io.sources.fear_greed import FearGreedClient  # noqa: E402
from sentiment.io.store import Store  # noqa: E402
from sentiment.services.live import live_update  # noqa: E402
from sentiment.settings import get_settings  # noqa: E402

SPEED = 360.0  # replay seconds per wall second: an hourly bar every 10 s
BARS = 10


def _defs(exchange, db, config):
    settings = dataclasses.replace(get_settings(), db_path=db,
                                   bybit_base_url=exchange.base_url,
                                   fear_greed_url=exchange.fear_greed_url)
    return build_definitions(config, settings)


def _run(defs, job, instance, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=True,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}, **kwargs)
    assert result.success
    return result


def bench_one_bar(tmp: Path, days: int) -> None:
    """One new bar per run after ``days`` of history (its bootstrap trains the HMMs)."""
    config = dataclasses.replace(
        load_config(), start_date=dt.date(2022, 12, 1) - dt.timedelta(days=days))
    db = str(tmp / f"one_bar_{days}.duckdb")
    with ReplayExchange(port=0, now=dt.datetime(2022, 12, 1)) as exchange:
        defs = _defs(exchange, db, config)
        instance = DagsterInstance.ephemeral()
        start = time.perf_counter()
        _run(defs, "live_update_job", instance)
        bootstrap = time.perf_counter() - start
        times = []
        clock = dt.datetime(2022, 12, 1)
        for _ in range(20):
            clock += dt.timedelta(hours=1)
            exchange.set_clock(clock + dt.timedelta(seconds=5))
            start = time.perf_counter()
            _run(defs, "live_update_job", instance)
            times.append(time.perf_counter() - start)
    print(f"live_update_job in process, one new bar (2 symbols x 2 intervals): median "
          f"{statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} bars "
          f"[target <= 0.5 s] with {days} days stored; bootstrap: {bootstrap:.1f} s")


def bench_backfill(tmp: Path) -> None:
    config = load_config()
    db = str(tmp / "backfill.duckdb")
    with ReplayExchange(port=0) as exchange:
        defs = _defs(exchange, db, config)
        instance = DagsterInstance.ephemeral()
        tags = {"dagster/asset_partition_range_start": "2022-01-01|BTCUSDT",
                "dagster/asset_partition_range_end": "2022-12-31|ETHUSDT"}
        _run(defs, "market_data_job", instance, tags=tags)
        _run(defs, "fear_greed_job", instance,
             tags={"dagster/asset_partition_range_start": "2022-01-01",
                   "dagster/asset_partition_range_end": "2022-12-31"})
        start = time.perf_counter()
        _run(defs, "sentiment_job", instance, tags=tags)
        took = time.perf_counter() - start
    rows = len(Store(db).read("sentiment_history"))
    print(f"sentiment_job backfill of the bundled year: {took:.1f} s for {rows:,} rows "
          "(one run, checks included)")


def _committed(store: Store, close: dt.datetime) -> bool:
    try:
        frame = store.query("SELECT count(*) AS n FROM sentiment_history WHERE symbol = "
                            "'BTCUSDT' AND interval = '60' AND timestamp = ?", [close])
    except FileNotFoundError:
        return False
    return int(frame["n"].iloc[0]) > 0


def bench_latency(tmp: Path) -> None:
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    extra = os.environ.get("BENCH_DAGSTER_YAML_EXTRA")
    if extra:
        with open(home / "dagster.yaml", "a") as fh:
            fh.write("\n" + Path(extra).read_text())
    cfg = tmp / "sentiment.yaml"
    text = (ROOT / "sentiment.yaml").read_text()
    text = text.replace('start_date: "2022-01-01"', 'start_date: "2022-11-15"')
    text = text.replace("sensor_interval_seconds: 30", "sensor_interval_seconds: 1")
    cfg.write_text(text)
    db = str(tmp / "latency.duckdb")
    start_clock = dt.datetime(2022, 12, 1, 0, 0, 30)
    with ReplayExchange(port=0, now=start_clock, speed=0.0) as exchange:
        env = {**os.environ, "DAGSTER_HOME": str(home), "SENTIMENT_CONFIG": str(cfg),
               "SENTIMENT_DB": db, "BYBIT_BASE_URL": exchange.base_url,
               "FEAR_GREED_URL": exchange.fear_greed_url}
        # Bootstrap first, so the timed runs each add one bar.
        config = dataclasses.replace(load_config(cfg))
        _run(_defs(exchange, db, config), "live_update_job", DagsterInstance.ephemeral())
        store = Store(db, lock_timeout=30)
        proc = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", str(Path(sys.executable).parent / "dagster"),
             "dev", "-h", "127.0.0.1", "-p", "3999", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(20)  # let the webserver and the daemon come up before the clock runs
            exchange.set_clock(start_clock, speed=SPEED)
            wall0 = time.monotonic()
            epoch0 = time.time()
            latencies = []
            for k in range(1, BARS + 1):
                close = dt.datetime(2022, 12, 1, k)
                close_wall = wall0 + (close - start_clock).total_seconds() / SPEED
                deadline = close_wall + 60
                while not _committed(store, close):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no row for the bar closing at {close}")
                    time.sleep(0.1)
                latencies.append(time.monotonic() - close_wall)
            breakdown = _breakdown(home, start_clock, epoch0)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"bar close on the exchange -> committed row, through dagster dev, the sensor "
          f"(1 s) and the run: median {statistics.median(latencies):.1f} s, max "
          f"{max(latencies):.1f} s over {len(latencies)} bars [target median <= 5 s]")
    if breakdown:
        print("  where it goes (medians): " + ", ".join(
            f"{name} {statistics.median(values):.1f} s" for name, values in breakdown.items()))


def _breakdown(home: Path, start_clock: dt.datetime, epoch0: float) -> dict[str, list]:
    """Bar close -> run created (sensor) -> run starting (run queue) -> run started (process
    spawned, code loaded) -> run ended, from the instance's run records and run events."""
    from dagster import DagsterEventType

    marks = {DagsterEventType.RUN_STARTING: "starting", DagsterEventType.RUN_START: "start"}
    out: dict[str, list] = {"sensor": [], "queue": [], "process and code load": [],
                            "run": []}
    with DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records():
            key = record.dagster_run.tags.get("newest_bar_open")
            if not key or record.end_time is None:
                continue
            times = {}
            for event in instance.all_logs(record.dagster_run.run_id):
                name = marks.get(event.dagster_event_type)
                if name:
                    times[name] = event.timestamp
            if len(times) < len(marks):
                continue
            close = dt.datetime.fromisoformat(key) + dt.timedelta(hours=1)
            close_epoch = epoch0 + (close - start_clock).total_seconds() / SPEED
            created = record.create_timestamp.timestamp()
            out["sensor"].append(created - close_epoch)
            out["queue"].append(times["starting"] - created)
            out["process and code load"].append(times["start"] - times["starting"])
            out["run"].append(record.end_time - times["start"])
    return out if out["run"] else {}


#: A reader beside the writer (as the dashboard): counts rows through short read-only
#: connections; prints when it first saw rows and its longest wait for the writer.
READER = textwrap.dedent("""
    import json, sys, time
    from sentiment.io.store import Store
    store, t0 = Store(sys.argv[1], lock_timeout=0.05), float(sys.argv[2])
    first, longest, since = None, 0.0, None
    print("ready", flush=True)
    while True:
        now = time.time()
        try:
            n = int(store.query("SELECT count(*) AS n FROM sentiment_history")["n"].iloc[0])
            first = first if first is not None or not n else now - t0
            longest, since = max(longest, now - since) if since else longest, None
        except Exception:
            since = since or now
        print(json.dumps([first, max(longest, time.time() - since if since else 0.0)]),
              flush=True)
        time.sleep(0.05)
""")


@contextlib.contextmanager
def _write_holds():
    """Seconds each write connection of this process stayed open (the write lock)."""
    holds: list[float] = []
    original = Store.connect

    @contextlib.contextmanager
    def timed(self, *, read_only=False):
        outer = self._session is None and not read_only
        started = time.perf_counter()
        with original(self, read_only=read_only) as conn:
            try:
                yield conn
            finally:
                if outer:
                    holds.append(time.perf_counter() - started)

    Store.connect = timed
    try:
        yield holds
    finally:
        Store.connect = original


def bench_first_start(tmp: Path) -> None:
    config = load_config()
    for name in ("one live update", "bootstrap_job + live_update_job"):
        db = str(tmp / f"first_{len(name)}.duckdb")
        Store(db).init()
        with ReplayExchange(port=0, now=dt.datetime(2022, 12, 1)) as exchange:
            t0 = time.time()
            reader = subprocess.Popen([sys.executable, "-c", READER, db, str(t0)],
                                      stdout=subprocess.PIPE, text=True, cwd=ROOT)
            assert reader.stdout.readline().strip() == "ready"
            with _write_holds() as holds:
                if name == "one live update":
                    live_update(Store(db), config, BybitClient(exchange.base_url),
                                FearGreedClient(exchange.fear_greed_url))
                else:
                    defs = _defs(exchange, db, config)
                    instance = DagsterInstance.ephemeral()
                    _run(defs, "bootstrap_job", instance)
                    _run(defs, "live_update_job", instance)
            took = time.time() - t0
            while True:  # until the reader has seen the rows
                first, waited = json.loads(reader.stdout.readline())
                if first is not None:
                    break
            reader.kill()
            reader.wait()
        print(f"first start, {name}: rows visible to a reader after {first:.1f} s, all "
              f"after {took:.1f} s; longest write-lock hold {max(holds):.2f} s, longest "
              f"reader wait {waited:.1f} s")


def main() -> None:
    # ignore_cleanup_errors: a stopped `dagster dev` may still be flushing its run history.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        if "--first-start-only" in sys.argv:
            bench_first_start(Path(tmp))
            return
        if "--latency-only" not in sys.argv:
            bench_first_start(Path(tmp))
            bench_one_bar(Path(tmp), 30)
            bench_one_bar(Path(tmp), 334)
            bench_backfill(Path(tmp))
        bench_latency(Path(tmp))


if __name__ == "__main__":
    main()
