"""The README's `sentiment` commands run as written, so the README cannot rot: every
``.venv/bin/sentiment ...`` it shows (in code blocks and inline) runs against a database of
the bundled year and succeeds; an example shown with its output (``$ command`` and the lines
after it) prints exactly that; the status block it shows has the labels and marks the
command prints; ``--json`` is keyed by the ``sentiment_history`` columns."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.history import compute_history
from sentiment.io.store import Store
from sentiment.models import HISTORY_COLUMNS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = re.compile(r"(?:^\$ )?\.venv/bin/sentiment (?P<args>[^`\n]*)", re.MULTILINE)
#: Subcommands that serve until stopped: not run here (tests/integration/test_stream.py and
#: test_replay.py run them).
SERVERS = {"stream", "replay-server"}


def readme_commands() -> list[list[str]]:
    """The arguments of every `.venv/bin/sentiment` command in the README, continuation
    lines joined and trailing comments dropped."""
    text = README.replace("\\\n", " ")
    out = []
    for match in COMMAND.finditer(text):
        args = shlex.split(match["args"].split("#")[0])
        if args and args[0] not in SERVERS and args not in out:
            out.append(args)
    return out


def shown_outputs() -> list[tuple[list[str], str]]:
    """``$ .venv/bin/sentiment ...`` lines in code blocks with the output shown under them."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, re.DOTALL):
        lines = block.splitlines()
        if lines and lines[0].startswith("$ .venv/bin/sentiment "):
            out.append((shlex.split(lines[0].removeprefix("$ .venv/bin/sentiment ")),
                        "\n".join(lines[1:]) + "\n"))
    return out


def _four_hours(candles: pd.DataFrame) -> pd.DataFrame:
    bars = candles.set_index("open_time").resample("4h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
         "turnover": "sum"}).reset_index()
    return bars.assign(symbol=candles["symbol"].iloc[0], interval="240")


@pytest.fixture(scope="module")
def year_db(tmp_path_factory) -> str:
    """The bundled year for every configured symbol at 1h and 4h, computed from what the
    replay exchange serves (no HMM layer: that is the Dagster jobs' part)."""
    path = tmp_path_factory.mktemp("readme") / "sentiment.duckdb"
    bundle, config = load_bundle(), load_config()
    store = Store(path)
    for symbol in config.symbols:
        hourly = bundle["candles"][bundle["candles"]["symbol"] == symbol].assign(interval="60")
        mine = {name: frame[frame["symbol"] == symbol] for name, frame in bundle.items()
                if name != "fear_greed"}
        for candles in (hourly, _four_hours(hourly)):
            rows = compute_history(
                candles, mine["funding"], mine["open_interest"].assign(interval="1h"),
                mine["long_short"].assign(period="1h"), bundle["fear_greed"], config)
            store.upsert("candles", candles)
            store.upsert("sentiment_history", rows)
    return str(path)


def run(args: list[str], db: str, tmp_path: Path) -> subprocess.CompletedProcess:
    args = [tmp_path / Path(a).name if a.endswith(".html") else a for a in args]
    if "--db" in args:  # the live loop's file: this database in its place
        args[args.index("--db") + 1] = db
    env = {**os.environ, "SENTIMENT_DB": db}
    return subprocess.run([sys.executable, "-m", "sentiment.cli", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_shows_the_commands_it_documents():
    commands = {args[0] for args in readme_commands()}
    assert {"status", "history", "evaluate", "tables"} <= commands


@pytest.mark.parametrize("args", readme_commands(), ids=" ".join)
def test_every_readme_command_runs(args, year_db, tmp_path):
    shown = dict((tuple(a), o) for a, o in shown_outputs())
    out = run(args, year_db, tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    if tuple(args) in shown:
        assert out.returncode == 1 and out.stdout + out.stderr == shown[tuple(args)]
    else:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip()


def test_the_status_block_has_the_labels_and_marks_the_readme_shows(year_db, tmp_path):
    block = README.split("`.venv/bin/sentiment status` prints too", 1)[1]
    block = block.split("```\n", 2)[1]
    out = run(["status", "--symbol", "BTCUSDT", "--interval", "60"], year_db, tmp_path)
    assert out.returncode == 0, out.stderr

    def labels(text: str) -> list[list[str]]:
        return [re.findall(r"[A-Za-z/]+:|\((?:synthetic|derived)[a-z ]*\)", line)
                for line in text.splitlines() if not line.lstrip().startswith("HMM:")]

    assert labels(out.stdout) == labels(block)
    assert out.stdout.splitlines()[-1] == block.splitlines()[-1]  # the note, word for word


def test_status_json_is_one_object_per_symbol_keyed_by_the_columns(year_db, tmp_path):
    out = run(["status", "--json"], year_db, tmp_path)
    assert out.returncode == 0, out.stderr
    objects = [json.loads(line) for line in out.stdout.splitlines()]
    assert [o["symbol"] for o in objects] == list(load_config().symbols)
    assert all(list(o) == list(HISTORY_COLUMNS) for o in objects)
    assert all(o["timestamp"] == "2023-01-01T00:00:00" for o in objects)
    assert out.stderr.count("note: ") == len(objects)  # the synthetic series, on stderr
