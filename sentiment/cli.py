"""The ``sentiment`` command."""

from __future__ import annotations

import argparse
import sys

from sentiment.errors import SentimentError


def _replay_server(args: argparse.Namespace) -> int:
    from sentiment.sources.replay import run_server

    run_server(host=args.host, port=args.port, now=args.now, speed=args.speed,
               ws_port=args.ws_port, gap_every=args.gap_every)
    return 0


def _stream(args: argparse.Namespace) -> int:
    import logging

    from sentiment.config import load_config
    from sentiment.settings import get_settings
    from sentiment.stream import StreamService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    service = StreamService(load_config(), args.url or settings.bybit_ws_url,
                            args.staging or settings.stream_dir)
    service.run()
    return 0


def _tables(args: argparse.Namespace) -> int:
    from sentiment.settings import get_settings
    from sentiment.store import TABLES, Store

    store = Store(args.db or get_settings().db_path)
    try:
        summary = store.summary(list(TABLES))
    except FileNotFoundError:
        print(f"no database at {store.path}: run `make demo` first", file=sys.stderr)
        return 1
    print(summary.to_string(index=False))
    return 0


def _status(args: argparse.Namespace) -> int:
    from sentiment.config import load_config
    from sentiment.settings import get_settings
    from sentiment.status import format_status, row_json
    from sentiment.store import Store, named_queries

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentiment", description="Market Sentiment Tracker")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser(
        "replay-server",
        help="serve the bundled recorded data on 127.0.0.1 in Bybit V5 / alternative.me format",
    )
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=int, default=8765)
    replay.add_argument("--now", default=None, help="replay clock start (ISO-8601 or ms)")
    replay.add_argument("--speed", type=float, default=0.0,
                        help="replay seconds per wall second (0 = frozen clock)")
    replay.add_argument("--ws-port", type=int, default=None,
                        help="also serve the public WebSocket on this port (tickers, books, "
                             "liquidations derived from the bundle)")
    replay.add_argument("--gap-every", type=int, default=0,
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
