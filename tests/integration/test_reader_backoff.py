"""Readers polling without pause never starve a writer: a writer that waits for the file
marks it, and readers hold back until it is in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sentiment.io.store import Store

pytestmark = pytest.mark.integration

READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sentiment.io.store import Store
    store, stop = Store(sys.argv[1], lock_timeout=30.0), Path(sys.argv[2])
    reads = 0
    while not stop.exists():  # no pause between reads, like a dashboard gone wild
        with store.connect(read_only=True) as conn:
            conn.execute("SELECT count(*) FROM candles").fetchone()
            time.sleep(0.05)  # a read that takes a moment, as a page's queries do
        reads += 1
        if reads == 1:
            print("reading", flush=True)
    print(reads)
""")


@pytest.mark.slow
def test_four_readers_polling_without_pause_let_a_writer_in(tmp_path):
    db = tmp_path / "busy.duckdb"
    Store(db).init()
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(db), str(stop)],
                                stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for r in readers:  # every reader is polling before the writer comes
            assert r.stdout.readline().strip() == "reading"
        row = pd.DataFrame([{"symbol": "BTCUSDT", "interval": "60",
                             "open_time": pd.Timestamp("2022-01-01"), "open": 1.0,
                             "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0,
                             "turnover": 0.0}])
        start = time.monotonic()
        Store(db, lock_timeout=20.0).upsert("candles", row)  # raises if starved for 20 s
        waited = time.monotonic() - start
    finally:
        stop.touch()
        reads = [int(r.communicate(timeout=60)[0].strip() or 0) for r in readers]
    assert waited < 3.0, waited
    assert all(n > 0 for n in reads)  # the readers did run, and went on afterwards
    assert len(Store(db).read("candles")) == 1
    assert not Path(str(db) + ".writer-waiting").exists()

