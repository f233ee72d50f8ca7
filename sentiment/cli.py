"""The ``sentiment`` command."""

from __future__ import annotations

import argparse
import sys

from sentiment.errors import SentimentError


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
    from sentiment.io.store import TABLES, Store
    from sentiment.settings import get_settings

    store = Store(args.db or get_settings().db_path)
    try:
        # A reader: read-only, so it creates nothing, takes no write lock and works on a
        # read-only disk.
        summary = store.summary(list(TABLES), read_only=True)
    except FileNotFoundError:
        print(f"no database at {store.path}: run `make demo` first", file=sys.stderr)
        return 1
    print(summary.to_string(index=False))
    absent = [name for name in TABLES if name not in set(summary["table"])]
    if absent:
        print(f"not in {store.path} yet: {', '.join(absent)}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from sentiment.config import load_config
    from sentiment.io.store import Store, named_queries
    from sentiment.services.status import format_status, row_json
    from sentiment.settings import get_settings

    config = load_config()
    symbols = [args.symbol] if args.symbol else list(config.symbols)
    interval = args.interval or config.intervals[0]
    store = Store(args.db or get_settings().db_path)
    query = named_queries("queries.sql")["latest_snapshot"]
    blocks = []
    for symbol in symbols:
        try:
            frame = store.query(query, [symbol, interval])
        except FileNotFoundError:
            print(f"no database at {store.path}: run `make demo` first", file=sys.stderr)
            return 1
        if frame.empty:
            print(f"no sentiment rows for {symbol} at interval {interval} in {store.path}: "
                  "run `make demo` or materialize sentiment_history", file=sys.stderr)
            return 1
        row = frame.iloc[0].to_dict()
        blocks.append(row_json(row) if args.json else format_status(row))
    print(("\n" if args.json else "\n\n").join(blocks))
    return 0


def _bound(text: str | None, option: str, *, end: bool = False):
    """A ``--from`` / ``--to`` bound as naive UTC; a date alone as ``--to`` takes in the
    bars closing on that day."""
    import pandas as pd

    from sentiment.core.timeutil import naive_utc
    from sentiment.errors import InputError

    if text is None:
        return None
    try:
        ts = naive_utc(text)
    except ValueError:
        ts = pd.NaT
    if ts is pd.NaT:
        raise InputError("evaluate", f"{text!r} is neither a date nor an ISO time",
                         field=option)
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
    from sentiment.io.store import MISSING_TABLE_ERRORS, Store, named_queries
    from sentiment.settings import get_settings

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
        interval = args.interval or "60"
        rows = _csv_history(args, config, interval)
        # Cut after computing the whole file, so the range's first bars are warmed up.
        rows = rows[rows["timestamp"].between(start or pd.Timestamp.min,
                                              end or pd.Timestamp.max)]
        if rows.empty:
            print(f"no bars in {args.candles}{span}", file=sys.stderr)
            return 1
        histories.append(rows.reset_index(drop=True))
    else:
        interval = args.interval or config.intervals[0]
        store = Store(args.db or get_settings().db_path)
        query = named_queries("queries.sql")["history_range"]
        for symbol in [args.symbol] if args.symbol else list(config.symbols):
            try:
                rows = store.query(query, [symbol, interval, start, end])
            except FileNotFoundError:
                print(f"no database at {store.path}: run `make demo` first", file=sys.stderr)
                return 1
            except MISSING_TABLE_ERRORS:
                print(f"no sentiment_history table in {store.path}: run `make demo` first",
                      file=sys.stderr)
                return 1
            if rows.empty:
                print(f"no sentiment rows for {symbol} at interval {interval}{span} in "
                      f"{store.path}: run `make demo` or materialize sentiment_history",
                      file=sys.stderr)
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
                        help="kline code (default: the first configured interval)")
    status.add_argument("--json", action="store_true",
                        help="one JSON object per symbol, keyed by sentiment_history columns")
    status.add_argument("--db", default=None, help="DuckDB file (default $SENTIMENT_DB)")
    status.set_defaults(func=_status)

    evaluate = sub.add_parser(
        "evaluate",
        help="regime-quality metrics of the stored history (or of a candles CSV file)",
    )
    evaluate.add_argument("--symbol", default=None,
                          help="default: every configured symbol (required with --candles)")
    evaluate.add_argument("--interval", default=None,
                          help="kline code (default: the first configured interval; 60 with "
                               "--candles)")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
