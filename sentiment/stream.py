"""What the live stream makes of Bybit's public pushes, between two flushes to staging.

For every configured symbol the stream subscribes to ``tickers.{symbol}``,
``orderbook.{depth}.{symbol}`` and ``allLiquidation.{symbol}``. :class:`StreamRecorder`
takes each decoded message and keeps:

* the **order book** (:class:`~sentiment.orderbook.OrderBook`, update ids checked) and its
  **OBI samples**: one per ``sample_ms`` slot of exchange time, the book's imbalance right
  after the first message of the slot (so a replay gives the same samples as the live run);
* the **ticker**: Bybit sends a snapshot, then deltas with only the changed fields; the
  merged ticker is recorded once per ``ticker_ms`` slot;
* every **liquidation** (time ``T``, side ``S``, size ``v``, price ``p``), with a sequence
  number (message time x 1000 + its place in the message) and the rolling pressure of
  :class:`~sentiment.liquidations.LiquidationMonitor` (cascade, squeeze);
* how far each symbol got (``through``: the newest message time).

A malformed message is counted and named in the log; it never stops the stream. A book gap
returns the topic to subscribe again (for a fresh snapshot).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sentiment.errors import InputError
from sentiment.liquidations import LiquidationMonitor, LiquidationReading
from sentiment.orderbook import BookGap, OrderBook

log = logging.getLogger(__name__)

#: Ticker fields kept (Bybit name -> column); all numbers except nextFundingTime (ms).
TICKER_FIELDS = {
    "lastPrice": "last_price", "markPrice": "mark_price", "indexPrice": "index_price",
    "prevPrice24h": "prev_price_24h", "price24hPcnt": "price_24h_pcnt",
    "highPrice24h": "high_price_24h", "lowPrice24h": "low_price_24h",
    "prevPrice1h": "prev_price_1h", "openInterest": "open_interest",
    "openInterestValue": "open_interest_value", "turnover24h": "turnover_24h",
    "volume24h": "volume_24h", "fundingRate": "funding_rate",
    "nextFundingTime": "next_funding_time", "bid1Price": "bid1_price",
    "bid1Size": "bid1_size", "ask1Price": "ask1_price", "ask1Size": "ask1_size",
}


def topics(symbols: Iterable[str], depth: int = 50) -> list[str]:
    """The stream's subscriptions for ``symbols``."""
    return [f"{kind}.{symbol}" for symbol in symbols
            for kind in ("tickers", f"orderbook.{depth}", "allLiquidation")]


def _number(value, source: str, symbol: str, name: str) -> float:
    if value == "" or value is None:
        return float("nan")  # Bybit sends "" for fields that do not apply
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(source, f"not a number: {value!r}", symbol=symbol,
                         field=name) from None


@dataclass
class SymbolStream:
    symbol: str
    book: OrderBook
    liquidations: LiquidationMonitor
    ticker: dict = field(default_factory=dict)
    obi_slot: int = -1
    ticker_slot: int = -1
    through: int | None = None
    drained_through: int | None = None
    resyncing: bool = False  # a new snapshot was asked for and has not come yet


@dataclass
class Counters:
    messages: int = 0
    book_messages: int = 0
    resyncs: int = 0
    bad_messages: int = 0
    liquidations: int = 0
    obi_samples: int = 0
    ticker_rows: int = 0


class StreamRecorder:
    """Books, tickers and liquidations of the configured symbols; rows pending a flush."""

    def __init__(self, symbols: Iterable[str], *, depth: int = 50, sample_ms: int = 1000,
                 ticker_ms: int = 10_000, liquidation_window_ms: int = 300_000):
        self.depth = depth
        self.sample_ms = sample_ms
        self.ticker_ms = ticker_ms
        self.symbols = {s: SymbolStream(s, OrderBook(s),
                                        LiquidationMonitor(s, liquidation_window_ms))
                        for s in symbols}
        self.counters = Counters()
        self.pending: dict[str, list[dict]] = {
            "liquidations": [], "orderbook_imbalance": [], "tickers": []}

    # ------------------------------------------------------------------ messages

    def on_message(self, message: Mapping) -> str | None:
        """Take one push; returns a topic to subscribe to again (its book lost messages)."""
        topic = message.get("topic") if isinstance(message, Mapping) else None
        if not isinstance(topic, str):
            return None  # acks and pongs are the client's business
        self.counters.messages += 1
        kind, _, symbol = topic.rpartition(".")
        state = self.symbols.get(symbol)
        try:
            if state is None:
                raise InputError("stream", f"a message for unsubscribed {topic}",
                                 symbol=symbol, field="topic")
            ts = int(message["ts"])
            if kind.startswith("orderbook."):
                resync = self._book(state, message, ts, topic)
            elif kind == "tickers":
                self._ticker(state, message, ts)
                resync = None
            elif kind == "allLiquidation":
                self._liquidations(state, message, ts)
                resync = None
            else:
                raise InputError("stream", f"unknown topic {topic}", symbol=symbol,
                                 field="topic")
        except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.counters.bad_messages += 1
            log.error("stream: bad %s message skipped: %s", topic, exc)
            return None
        state.through = ts if state.through is None else max(state.through, ts)
        return resync

    def _book(self, state: SymbolStream, message: Mapping, ts: int, topic: str) -> str | None:
        self.counters.book_messages += 1
        try:
            state.book.apply(message)
        except BookGap as exc:
            if state.resyncing:  # asked already: the deltas in flight wait for the snapshot
                return None
            state.resyncing = True
            self.counters.resyncs += 1
            log.warning("stream: %s; asking for a new snapshot", exc)
            return topic
        if message.get("type") == "snapshot":
            state.resyncing = False
        slot = ts // self.sample_ms
        if slot > state.obi_slot:
            obi = state.book.imbalance()
            if obi == obi:
                state.obi_slot = slot
                self.pending["orderbook_imbalance"].append(
                    {"symbol": state.symbol, "ts": ts, "obi": obi})
                self.counters.obi_samples += 1
        return None

    def _ticker(self, state: SymbolStream, message: Mapping, ts: int) -> None:
        data = message["data"]
        if not isinstance(data, Mapping):
            raise InputError("tickers", f"data is a {type(data).__name__}, not an object",
                             symbol=state.symbol, field="data")
        if data.get("symbol", state.symbol) != state.symbol:
            raise InputError("tickers", f"a {data.get('symbol')} ticker on "
                             f"tickers.{state.symbol}", symbol=state.symbol, field="symbol")
        values = {column: _number(data[name], "tickers", state.symbol, name)
                  for name, column in TICKER_FIELDS.items() if name in data}
        if message.get("type") == "snapshot":
            state.ticker = values
        else:
            state.ticker.update(values)
        slot = ts // self.ticker_ms
        if slot > state.ticker_slot and state.ticker:
            state.ticker_slot = slot
            row = {column: state.ticker.get(column, float("nan"))
                   for column in TICKER_FIELDS.values()}
            nft = row["next_funding_time"]
            row["next_funding_time"] = None if nft != nft else int(nft)
            self.pending["tickers"].append({"symbol": state.symbol, "ts": ts, **row})
            self.counters.ticker_rows += 1

    def _liquidations(self, state: SymbolStream, message: Mapping, ts: int) -> None:
        items = message["data"]
        if isinstance(items, Mapping):  # older pushes carried one object
            items = [items]
        if not isinstance(items, list):
            raise InputError("liquidations", f"data is a {type(items).__name__}, not a list",
                             symbol=state.symbol, field="data")
        for i, item in enumerate(items):
            try:  # a bad item is skipped; the good ones of the same push are kept
                if not isinstance(item, Mapping):
                    raise InputError("liquidations", f"item {i} is not an object",
                                     symbol=state.symbol, field="data")
                if item.get("s", state.symbol) != state.symbol:
                    raise InputError("liquidations", f"a {item.get('s')} liquidation on "
                                     f"allLiquidation.{state.symbol}", symbol=state.symbol,
                                     field="s")
                side = item.get("S")
                size = _number(item.get("v"), "liquidations", state.symbol, "v")
                price = _number(item.get("p"), "liquidations", state.symbol, "p")
                try:
                    when = int(item["T"])
                except (KeyError, TypeError, ValueError):
                    raise InputError("liquidations", f"bad time {item.get('T')!r}",
                                     symbol=state.symbol, field="T") from None
                state.liquidations.add(when, side, size, price)  # checks side, size, price
            except InputError as exc:
                self.counters.bad_messages += 1
                log.error("stream: bad liquidation skipped: %s", exc)
                continue
            self.pending["liquidations"].append(
                {"symbol": state.symbol, "ts": when, "side": side, "price": price,
                 "size": size, "seq": ts * 1000 + i})
            self.counters.liquidations += 1

    # ------------------------------------------------------------------ reading

    def pressure(self, symbol: str) -> LiquidationReading | None:
        state = self.symbols[symbol]
        if state.through is None:
            return None
        return state.liquidations.reading(state.through)

    def restore(self, rows: dict[str, list[dict]]) -> None:
        """Put drained rows back in front (their flush failed), so the next one stages them."""
        for kind, items in rows.items():
            if kind in self.pending:
                self.pending[kind] = list(items) + self.pending[kind]
        for item in rows.get("stream_state", ()):
            self.symbols[item["symbol"]].drained_through = None

    def drain(self) -> dict[str, list[dict]]:
        """The rows received since the last drain, and how far each symbol got (for the
        symbols that got further)."""
        out, self.pending = self.pending, {kind: [] for kind in self.pending}
        out["stream_state"] = [{"symbol": s.symbol, "through": s.through}
                               for s in self.symbols.values()
                               if s.through is not None and s.through != s.drained_through]
        for s in self.symbols.values():
            s.drained_through = s.through
        return out


class StreamService:
    """``sentiment stream``: the WebSocket client, the recorder and the staging directory.

    Every ``flush_seconds`` (and once more on the way out) the received rows are staged.
    SIGINT and SIGTERM stop it cleanly: the client leaves its read loop within a flush
    period and what it holds is staged before the process exits.
    """

    def __init__(self, config, url: str, staging_dir: str | Path):
        from sentiment.sources.bybit_ws import BybitStream
        from sentiment.staging import Staging

        sc = config.stream
        self.staging = Staging(Path(staging_dir))
        self.recorder = StreamRecorder(
            config.symbols, depth=config.exchange_data.orderbook_depth,
            sample_ms=int(sc.sample_seconds * 1000), ticker_ms=int(sc.ticker_seconds * 1000),
            liquidation_window_ms=sc.liquidation_window_seconds * 1000)
        self.client = BybitStream(
            url, topics(config.symbols, config.exchange_data.orderbook_depth),
            self.recorder.on_message, tick=self.flush, tick_seconds=sc.flush_seconds,
            ping_seconds=sc.ping_seconds, dead_seconds=sc.dead_seconds,
            max_backoff_seconds=sc.max_backoff_seconds)
        self.flushes = 0
        self.failed_flushes = 0
        self._flush_lock = threading.Lock()
        self._alarms: dict[str, tuple[bool, str | None]] = {}

    def flush(self) -> list[Path]:
        """Stage what was received since the last flush."""
        with self._flush_lock:
            rows = self.recorder.drain()
            if not any(rows.values()):
                return []
            try:
                written = self.staging.write(rows)
            except OSError as exc:  # disk full, directory gone: keep the rows, retry later
                self.recorder.restore(rows)
                self.failed_flushes += 1
                log.error("stream: staging in %s failed (%s); the %d rows are kept for the "
                          "next flush", self.staging.directory, exc,
                          sum(len(v) for v in rows.values()))
                return []
            self.flushes += 1
        for symbol in self.recorder.symbols:
            reading = self.recorder.pressure(symbol)
            if reading is None:
                continue
            alarm = (reading.cascade, reading.squeeze)
            if alarm != self._alarms.get(symbol, (False, None)):  # log changes only
                log.warning("stream: %s liquidations %.0f in the window (%.1fx the hour's "
                            "average): %s", symbol, reading.volume, reading.ratio,
                            ", ".join(filter(None, (
                                "cascade" if reading.cascade else "",
                                f"{reading.squeeze} squeeze" if reading.squeeze else "",
                            ))) or "back to normal")
            self._alarms[symbol] = alarm
        return written

    def run(self, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.client.stop())
        try:
            self.client.run()
        finally:
            self.flush()
            log.info("stream: stopped after %s; staged in %s", self.recorder.counters,
                     self.staging.directory)
