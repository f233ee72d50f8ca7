"""The ``sentiment`` command."""

from __future__ import annotations

import argparse
import sys

from sentiment.errors import SentimentError, UsageError

#: What to run when there is no data yet.
MAKE_DEMO = "run `make demo` first, or point --db (or SENTIMENT_DB) at a database"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0: any free port), got {port}")
    return port


def _replay_time(text: str) -> str:
    import pandas as pd

    from sentiment.core.timeutil import epoch_ms

    try:
        pd.Timestamp(epoch_ms(text), unit="ms")  # also in the range a clock can show
    except (ValueError, TypeError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (ISO-8601 such as 2022-06-01T00:00:00, or Unix ms)"
        ) from None
    return text


def _speed(text: str) -> float:
    import math

    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(speed) or speed < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return speed


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ------------------------------------------------------------------ symbols and intervals

#: Common names of the kline intervals (what other tools call them) -> Bybit's code.
_UNIT_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 1440, "w": 10080}


def interval_name(code: str) -> str:
    """``60`` -> ``1h``, ``D`` -> ``1d``: the common name of a Bybit kline code."""
    from sentiment.models import INTERVAL_MINUTES

    minutes = INTERVAL_MINUTES[code]
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def interval_code(text: str) -> str | None:
    """The Bybit kline code ``text`` names: the code itself (``60``, ``D``; ``d`` too) or a
    common name (``1h``, ``4h``, ``15m``, ``15min``, ``1d``, ``1w``); None when it names none."""
    import re

    from sentiment.models import INTERVAL_MINUTES

    text = text.strip()
    if text.upper() in INTERVAL_MINUTES:
        return text.upper()
    match = re.fullmatch(r"(\d+)\s*(m|min|h|d|w)", text.lower())
    if match is None:
        return None
    minutes = int(match[1]) * _UNIT_MINUTES[match[2]]
    return next((c for c, m in INTERVAL_MINUTES.items() if m == minutes), None)


def _listing(codes) -> str:
    return ", ".join(f"{c} ({interval_name(c)})" for c in codes)


def choose_interval(text: str | None, configured, *, any_code: bool = False) -> str:
    """The kline code of ``--interval`` (default: the first configured one). Raises
    :class:`UsageError` listing the valid values for an unknown interval, and for one that is
    not configured unless ``any_code`` (a candles file may have any interval)."""
    from sentiment.models import INTERVAL_MINUTES
    from sentiment.settings import get_settings

    if text is None:
        return configured[0]
    code = interval_code(text)
    if code is None:
        valid = _listing(INTERVAL_MINUTES) if any_code else _listing(configured)
        raise UsageError(f"--interval {text!r} is not a kline interval; use one of: {valid} "
                         "(the Bybit code or the name in brackets)")
    if not any_code and code not in configured:
        raise UsageError(f"--interval {text}: {code} ({interval_name(code)}) is not configured "
                         f"in {get_settings().config_path}; configured: {_listing(configured)}")
    return code


def choose_symbols(text: str | None, configured) -> list[str]:
    """``[--symbol]`` (upper-cased), or every configured symbol; :class:`UsageError` listing
    the configured ones for a symbol that is not."""
    from sentiment.settings import get_settings

    if text is None:
        return list(configured)
    symbol = text.strip().upper()
    if symbol not in configured:
        raise UsageError(f"--symbol {text} is not configured in {get_settings().config_path}; "
                         f"configured: {', '.join(configured)}")
    return [symbol]


def _reader(args: argparse.Namespace):
    """The store a command reads (``--db`` or ``SENTIMENT_DB``), with the short lock wait of
    a command line."""
    from sentiment.io.retry import CLI_LOCK_WAIT_SECONDS
    from sentiment.io.store import Store
    from sentiment.settings import get_settings

    return Store(args.db or get_settings().db_path, lock_timeout=CLI_LOCK_WAIT_SECONDS)


def _no_rows(conn, store, symbol: str, interval: str, span: str = "") -> str:
    """Why there is no row for ``symbol`` at ``interval``: what the database holds instead,
    or that it holds nothing yet."""
    from sentiment.io.store import named_queries

    held = conn.execute(named_queries("queries.sql")["stored_series"]).fetchall()
    want = f"no sentiment rows for {symbol} at interval {interval} ({interval_name(interval)})"
    if not held:
        return f"{want}{span} in {store.path}: it holds no sentiment rows yet; {MAKE_DEMO}"
    series = ", ".join(f"{sym} {code} ({interval_name(code)}, up to {newest:%Y-%m-%d %H:%M})"
                       if code in _known_codes() else f"{sym} {code}"
                       for sym, code, _, newest in held)
    return f"{want}{span} in {store.path}; it holds: {series}"


def _known_codes():
    from sentiment.models import INTERVAL_MINUTES

    return INTERVAL_MINUTES


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def _replay_server(args: argparse.Namespace) -> int:
    from replay.server import run_server

    run_server(host=args.host, port=args.port, now=args.now, speed=args.speed,
               ws_port=args.ws_port, gap_every=args.gap_every)
    return 0


def _stream(args: argparse.Namespace) -> int:
    import logging

    from sentiment.config import load_config
    from sentiment.services.stream import StreamService
    from sentiment.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    service = StreamService(load_config(), args.url or settings.bybit_ws_url,
                            args.staging or settings.stream_dir)
    service.run()
    return 0


def _tables(args: argparse.Namespace) -> int:
    from sentiment.io.store import TABLES

    store = _reader(args)
    # A reader: read-only, so it creates nothing, takes no write lock and works on a
    # read-only disk.
    summary = store.summary(list(TABLES), read_only=True)
    print(summary.to_string(index=False))
    absent = [name for name in TABLES if name not in set(summary["table"])]
    if absent:
        print(f"not in {store.path} yet: {', '.join(absent)}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from sentiment.config import load_config
    from sentiment.io.store import named_queries
    from sentiment.provenance import DERIVED_MEANS, SYNTHETIC_MEANS, read_source
    from sentiment.services.status import format_status, row_json

    config = load_config()
    symbols = choose_symbols(args.symbol, config.symbols)
    interval = choose_interval(args.interval, config.intervals)
    store = _reader(args)
    query = named_queries("queries.sql")["latest_snapshot"]
    blocks, notes = [], []
    with store.connect(read_only=True) as conn:  # one connection: one wait at most
        for symbol in symbols:
            frame = conn.execute(query, [symbol, interval]).df()
            if frame.empty:
                print(_no_rows(conn, store, symbol, interval), file=sys.stderr)
                return 1
            row = frame.iloc[0].to_dict()
            source = read_source(conn, symbol, row["timestamp"])
            if args.json:
                blocks.append(row_json(row))
                made_up = source.columns(row)
                for kind, means in (("synthetic", SYNTHETIC_MEANS), ("derived", DERIVED_MEANS)):
                    columns = [c for c, k in made_up.items() if k == kind]
                    if columns:
                        notes.append(f"note: {symbol}: {', '.join(columns)}: {kind.upper()}, "
                                     f"{means}")
            else:
                blocks.append(format_status(row, source))
    print(("\n" if args.json else "\n\n").join(blocks))
    for note in notes:  # stdout stays the JSON objects, keyed by the table's columns only
        print(note, file=sys.stderr)
    return 0


#: The columns ``sentiment history`` prints as a table (``--csv`` and ``--json`` give all),
#: under the names the status block, the dashboard and docs/scores.md use.
HISTORY_TABLE = {
    "timestamp": "bar close (UTC)", "close": "close", "regime": "regime",
    "regime_duration_bars": "bars", "sentiment_score": "sentiment", "confidence": "conf",
    "trend_score": "trend", "momentum_score": "momentum", "volatility_score": "volatility",
    "volume_flow_score": "volume_flow", "exchange_sentiment": "exchange",
    "macro_sentiment": "macro", "hmm_regime": "hmm",
}


#: The signed columns among them (the others read 0 .. 1, or a price).
SIGNED_HISTORY = {"sentiment", "trend", "momentum", "volume_flow", "exchange", "macro"}


def _signed2(value: float) -> str:
    return "n/a" if value != value else f"{value:+.2f}"


def _plain2(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


def _history(args: argparse.Namespace) -> int:
    import pandas as pd

    from sentiment.config import load_config
    from sentiment.io.store import named_queries
    from sentiment.provenance import SYNTHETIC_MEANS, read_source
    from sentiment.services.status import row_json

    config = load_config()
    symbols = choose_symbols(args.symbol, config.symbols)
    interval = choose_interval(args.interval, config.intervals)
    start, end = _bound(args.start, "--from"), _bound(args.end, "--to", end=True)
    span = "".join((f" from {start:%Y-%m-%d %H:%M}" if start else "",
                    f" to {end:%Y-%m-%d %H:%M}" if end else ""))
    queries = named_queries("queries.sql")
    store = _reader(args)
    frames, notes = [], []
    with store.connect(read_only=True) as conn:
        for symbol in symbols:
            if start is None and end is None:
                last = 24 if args.last is None else args.last
                rows = conn.execute(queries["history_recent"], [symbol, interval, last]).df()
                rows = rows.iloc[::-1].reset_index(drop=True)
            else:
                rows = conn.execute(queries["history_range"],
                                    [symbol, interval, start, end]).df()
                if args.last is not None:
                    rows = rows.tail(args.last).reset_index(drop=True)
            if rows.empty:
                print(_no_rows(conn, store, symbol, interval, span), file=sys.stderr)
                return 1
            source = read_source(conn, symbol, rows["timestamp"].iloc[-1])
            if source.replay:  # the table shows none of them, but the exchange score reads them
                notes.append(f"note: {symbol}: exchange reads open interest and long/short "
                             f"ratio that are SYNTHETIC, {SYNTHETIC_MEANS}")
            frames.append(rows)
    if args.json:
        print("\n".join(row_json(r) for f in frames for r in f.to_dict("records")))
    elif args.csv:
        pd.concat(frames, ignore_index=True).to_csv(sys.stdout, index=False,
                                                    date_format="%Y-%m-%dT%H:%M:%S")
    else:
        blocks = []
        for rows in frames:
            table = rows[list(HISTORY_TABLE)].rename(columns=HISTORY_TABLE)
            table["bar close (UTC)"] = table["bar close (UTC)"].dt.strftime("%Y-%m-%d %H:%M")
            for name in ("regime", "bars", "hmm"):  # warm-up rows have none
                table[name] = table[name].astype(object).where(table[name].notna(), "n/a")
            text = table.to_string(index=False, na_rep="n/a", formatters={
                name: (_signed2 if name in SIGNED_HISTORY else _plain2)
                for name in table.columns if table[name].dtype.kind == "f"})
            blocks.append(f"{rows['symbol'].iloc[0]} {interval} ({interval_name(interval)})"
                          f"\n{text}")
        print("\n\n".join(blocks))
    for note in notes:
        print(note, file=sys.stderr)
    return 0


def _bound(text: str | None, option: str, *, end: bool = False):
    """A ``--from`` / ``--to`` bound as naive UTC; a date alone as ``--to`` takes in the
    bars closing on that day."""
    import pandas as pd

    from sentiment.core.timeutil import naive_utc

    if text is None:
        return None
    try:
        ts = naive_utc(text)
    except ValueError:
        ts = pd.NaT
    if ts is pd.NaT:
        raise UsageError(f"{option} {text!r} is neither a date nor an ISO time (UTC), e.g. "
                         "2022-06-01 or 2022-06-01T12:00")
    if end and len(text.strip()) <= 10:
        ts += pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.to_pydatetime()


def _csv_history(args: argparse.Namespace, config, interval: str):
    """The history of ``--candles`` (with ``--funding``, ``--fear-greed`` and ``--hmm``)."""
    from sentiment.errors import InputError
    from sentiment.history import compute_history, with_walk_forward_hmm
    from sentiment.io.csvfiles import read_candles, read_fear_greed, read_funding

    if not args.symbol:
        raise InputError("evaluate", "--candles needs --symbol", field="symbol")
    candles = read_candles(args.candles, args.symbol, interval)
    rows = compute_history(
        candles, read_funding(args.funding, args.symbol) if args.funding else None, None,
        None, read_fear_greed(args.fear_greed) if args.fear_greed else None, config)
    if args.hmm:
        rows, _ = with_walk_forward_hmm(rows, candles["volume"].to_numpy(), config,
                                        symbol=args.symbol, interval=interval)
    return rows


def _evaluate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from sentiment.config import load_config
    from sentiment.core.evaluation import evaluate, format_report, read_events
    from sentiment.errors import InputError
    from sentiment.io.store import named_queries

    config = load_config()
    start, end = _bound(args.start, "--from"), _bound(args.end, "--to", end=True)
    events = None
    if args.events:
        try:
            events = read_events(pd.read_csv(args.events))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError("events", f"cannot read {args.events}: {exc}",
                             field="path") from None
    span = "".join((f" from {start:%Y-%m-%d %H:%M}" if start else "",
                    f" to {end:%Y-%m-%d %H:%M}" if end else ""))
    histories: list[pd.DataFrame] = []
    if args.candles:
        interval = choose_interval(args.interval or "60", config.intervals, any_code=True)
        rows = _csv_history(args, config, interval)
        # Cut after computing the whole file, so the range's first bars are warmed up.
        rows = rows[rows["timestamp"].between(start or pd.Timestamp.min,
                                              end or pd.Timestamp.max)]
        if rows.empty:
            print(f"no bars in {args.candles}{span}", file=sys.stderr)
            return 1
        histories.append(rows.reset_index(drop=True))
    else:
        symbols = choose_symbols(args.symbol, config.symbols)
        interval = choose_interval(args.interval, config.intervals)
        store = _reader(args)
        query = named_queries("queries.sql")["history_range"]
        with store.connect(read_only=True) as conn:
            for symbol in symbols:
                rows = conn.execute(query, [symbol, interval, start, end]).df()
                if rows.empty:
                    print(_no_rows(conn, store, symbol, interval, span), file=sys.stderr)
                    return 1
                histories.append(rows)
    evaluations = [(evaluate(rows, interval, events=events), rows) for rows in histories]
    if args.html:
        from dashboard.report import html_report  # Plotly: only when a page is asked for

        Path(args.html).write_text(html_report(evaluations), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        objects = [ev.to_dict() for ev, _ in evaluations]
        print(json.dumps(objects[0] if len(objects) == 1 else objects, indent=2))
    else:
        print("\n\n".join(format_report(ev) for ev, _ in evaluations))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentiment", description="Market Sentiment Tracker")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser(
        "replay-server",
        help="serve the bundled recorded data on 127.0.0.1 in Bybit V5 / alternative.me format",
    )
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=_port, default=8765)
    replay.add_argument("--now", type=_replay_time, default=None,
                        help="replay clock start (ISO-8601 or ms)")
    replay.add_argument("--speed", type=_speed, default=0.0,
                        help="replay seconds per wall second (0 = frozen clock)")
    replay.add_argument("--ws-port", type=_port, default=None,
                        help="also serve the public WebSocket on this port (tickers, books, "
                             "liquidations derived from the bundle)")
    replay.add_argument("--gap-every", type=_count, default=0,
                        help="skip an order-book update id every N deltas (shows the resync)")
    replay.set_defaults(func=_replay_server)

    stream = sub.add_parser(
        "stream",
        help="stream tickers, order books and liquidations into the staging directory",
    )
    stream.add_argument("--url", default=None, help="WebSocket URL (default $BYBIT_WS_URL)")
    stream.add_argument("--staging", default=None,
                        help="staging directory (default $SENTIMENT_STREAM_DIR, or stream/ "
                             "beside the database)")
    stream.set_defaults(func=_stream)

    tables = sub.add_parser("tables", help="rows and time range of every table")
    tables.add_argument("--db", default=None, help="DuckDB file (default $SENTIMENT_DB)")
    tables.set_defaults(func=_tables)

    status = sub.add_parser("status", help="the latest snapshot of each symbol")
    status.add_argument("--symbol", default=None, help="default: every configured symbol")
    status.add_argument("--interval", default=None,
                        help="kline code such as 60 or 240, or its name such as 1h or 4h "
                             "(default: the first configured interval)")
    status.add_argument("--json", action="store_true",
                        help="one JSON object per symbol, keyed by sentiment_history columns")
    status.add_argument("--db", default=None, help="DuckDB file (default $SENTIMENT_DB)")
    status.set_defaults(func=_status)

    history = sub.add_parser(
        "history", help="the stored snapshots of each symbol over a range (default: the "
                        "newest 24)")
    history.add_argument("--symbol", default=None, help="default: every configured symbol")
    history.add_argument("--interval", default=None,
                         help="kline code such as 60 or 240, or its name such as 1h or 4h "
                              "(default: the first configured interval)")
    history.add_argument("--from", dest="start", default=None, metavar="WHEN",
                         help="first bar close, a date or ISO time (UTC)")
    history.add_argument("--to", dest="end", default=None, metavar="WHEN",
                         help="last bar close, a date (through its last bar) or ISO time "
                              "(UTC)")
    history.add_argument("--last", type=_positive, default=None, metavar="N",
                         help="only the newest N rows (default 24 without --from/--to)")
    output = history.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true",
                        help="every sentiment_history column, as CSV")
    output.add_argument("--json", action="store_true",
                        help="one JSON object per row, keyed by sentiment_history columns")
    history.add_argument("--db", default=None, help="DuckDB file (default $SENTIMENT_DB)")
    history.set_defaults(func=_history)

    evaluate = sub.add_parser(
        "evaluate",
        help="regime-quality metrics of the stored history (or of a candles CSV file)",
    )
    evaluate.add_argument("--symbol", default=None,
                          help="default: every configured symbol (required with --candles)")
    evaluate.add_argument("--interval", default=None,
                          help="kline code such as 60 or 240, or its name such as 1h or 4h "
                               "(default: the first configured interval; 60 with --candles)")
    evaluate.add_argument("--from", dest="start", default=None, metavar="WHEN",
                          help="first bar close, a date or ISO time (UTC)")
    evaluate.add_argument("--to", dest="end", default=None, metavar="WHEN",
                          help="last bar close, a date (through its last bar) or ISO time "
                               "(UTC)")
    evaluate.add_argument("--json", action="store_true",
                          help="the evaluation as JSON (a list when several symbols)")
    evaluate.add_argument("--html", default=None, metavar="FILE",
                          help="also write a self-contained HTML report with charts")
    evaluate.add_argument("--events", default=None, metavar="FILE",
                          help="CSV of named windows (name,start,end), e.g. docs/events.csv")
    evaluate.add_argument("--db", default=None, help="DuckDB file (default $SENTIMENT_DB)")
    evaluate.add_argument("--candles", default=None, metavar="FILE",
                          help="compute the history from this candles CSV instead of reading "
                               "the database")
    evaluate.add_argument("--funding", default=None, metavar="FILE",
                          help="funding rates CSV (with --candles)")
    evaluate.add_argument("--fear-greed", default=None, metavar="FILE",
                          help="Fear & Greed CSV (with --candles)")
    evaluate.add_argument("--hmm", action="store_true",
                          help="with --candles, also train and apply the walk-forward HMM "
                               "(about a minute for five years of 1h bars)")
    evaluate.set_defaults(func=_evaluate)
    return parser


def _database_named(args: argparse.Namespace) -> str:
    from sentiment.io import postgres
    from sentiment.settings import get_settings

    path = getattr(args, "db", None) or get_settings().db_path
    return postgres.redacted(path) if postgres.is_url(path) else str(path)


def explain(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one line a user sees for an error a command could not avoid (no database, a busy
    one, a table not created yet, a bad value); None for anything else (a bug: its
    traceback is the useful report)."""
    import re

    from sentiment.io.store import MISSING_TABLE_ERRORS, DatabaseMissing

    if isinstance(exc, DatabaseMissing):
        return f"{exc}: {MAKE_DEMO}"
    if isinstance(exc, SentimentError):
        return f"error: {exc}"
    if isinstance(exc, MISSING_TABLE_ERRORS):
        # DuckDB: "Table with name X does not exist"; PostgreSQL: 'relation "X" does not exist'
        found = re.search(r'(?:Table with name |relation ")(\w+)', str(exc))
        table = found[1] if found else "a table this command reads"
        return f"the database {_database_named(args)} has no {table} table yet: {MAKE_DEMO}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sentiment history | head`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except Exception as exc:
        message = explain(exc, args)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
