"""What the live stream makes of Bybit's public pushes, between two flushes to staging.

For every configured symbol the stream subscribes to ``tickers.{symbol}``,
``orderbook.{depth}.{symbol}`` and ``allLiquidation.{symbol}``. :class:`StreamRecorder`
takes each decoded message and keeps:

* the **order book** (:class:`~sentiment.core.orderbook.OrderBook`, update ids checked) and its
  **OBI samples**: one per ``sample_ms`` slot of exchange time, the book's imbalance right
  after the first message of the slot (so a replay gives the same samples as the live run);
* the **ticker**: Bybit sends a snapshot, then deltas with only the changed fields; the
  merged ticker is recorded once per ``ticker_ms`` slot;
* every **liquidation** (time ``T``, side ``S``, size ``v``, price ``p``), with a sequence
  number (message time x 1000 + its place in the message) and the rolling pressure of
  :class:`~sentiment.core.liquidations.LiquidationMonitor` (cascade, squeeze);
* how far each symbol got (``through``: the newest message time).

Every pushed value is checked where the push becomes a row, one check per kind: the push's
own time ``ts`` against the exchange clock (:class:`ExchangeClock`), a liquidation by
:func:`~sentiment.core.liquidations.check_liquidation`, a book by the
:class:`~sentiment.core.orderbook.OrderBook` (:class:`~sentiment.core.orderbook.BadBook`: impossible
levels, a crossed book), a ticker value by :func:`check_ticker_value`. A bad one is counted
(``bad_messages``), logged once naming source, symbol and field, and dropped; the good rows
of the same push and of the same flush are kept. A malformed message likewise never stops
the stream. A book gap, or a book push dropped, returns the topic to subscribe again (for a
fresh snapshot).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sentiment.core.liquidations import LiquidationMonitor, LiquidationReading, check_liquidation
from sentiment.core.orderbook import BadBook, BookGap, OrderBook
from sentiment.core.timeutil import DAY_MS
from sentiment.errors import InputError
from sentiment.io.sources.bybit_fields import TICKER_FIELDS
from sentiment.models import MAX_PRICE, MAX_SIZE

log = logging.getLogger(__name__)

_PRICE = (0.0, MAX_PRICE, True)  # (low, high, low excluded)
_AMOUNT = (0.0, MAX_SIZE, False)
#: What a ticker value may be (Bybit name -> range); "" is a field that does not apply.
TICKER_RANGES: dict[str, tuple[float, float, bool]] = {
    "lastPrice": _PRICE, "markPrice": _PRICE, "indexPrice": _PRICE,
    "prevPrice24h": _PRICE, "highPrice24h": _PRICE, "lowPrice24h": _PRICE,
    "prevPrice1h": _PRICE, "bid1Price": _PRICE, "ask1Price": _PRICE,
    "openInterest": _AMOUNT, "openInterestValue": _AMOUNT, "turnover24h": _AMOUNT,
    "volume24h": _AMOUNT, "bid1Size": _AMOUNT, "ask1Size": _AMOUNT,
    "price24hPcnt": (-1.0, 1000.0, False),  # a fraction: -100 % to +100,000 %
    "fundingRate": (-1.0, 1.0, False),  # a fraction per settlement (Bybit caps it at a few %)
}
#: nextFundingTime (ms) against the push's time: the next settlement, at most a day or so
#: ahead (a week allowed); a little behind just after a settlement. "0" means none.
NEXT_FUNDING_BEHIND_MS = DAY_MS
NEXT_FUNDING_AHEAD_MS = 7 * DAY_MS
#: How far a push's time ``ts`` may be from the exchange clock. Bybit's pushes agree with
#: it to a fraction of a second; an hour either way leaves room for the replay exchange,
#: whose clock may run thousands of times faster than the wall clock (measured: pushes up
#: to 7 replay minutes ahead of the clock at 3600x), and still refuses a push stamped a
#: day, a month or ten years off.
CLOCK_AHEAD_MS = 3_600_000
CLOCK_LATE_MS = 3_600_000
#: Whatever the clock says, no exchange time is before the first bitcoin block (2009-01-03)
#: or more than a day past the local wall clock (the replay exchange plays the past). This
#: also holds for the very first push, which has no clock to be checked against.
EARLIEST_MS = 1_230_940_800_000
WALL_AHEAD_MS = DAY_MS


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


def check_ticker_value(symbol: str, name: str, raw, ts: int) -> float:
    """A pushed ticker field as a number (NaN: "" or missing, a field that does not apply),
    or :class:`InputError` naming it: not a number, not finite, or outside its range
    (``TICKER_RANGES``; nextFundingTime near the push's time ``ts``)."""
    value = _number(raw, "tickers", symbol, name)
    if value != value and (raw == "" or raw is None):
        return value
    if not math.isfinite(value):
        raise InputError("tickers", f"not finite: {raw!r}", symbol=symbol, field=name)
    if name == "nextFundingTime":
        if value == 0:
            return float("nan")  # no next settlement
        if not ts - NEXT_FUNDING_BEHIND_MS <= value <= ts + NEXT_FUNDING_AHEAD_MS:
            raise InputError("tickers", f"{raw!r} is not a next settlement near the push's "
                             f"time {ts}", symbol=symbol, field=name)
        return value
    low, high, low_excluded = TICKER_RANGES[name]
    if not (low < value if low_excluded else low <= value) or not value <= high:
        raise InputError("tickers", f"{value:g} outside {'(' if low_excluded else '['}"
                         f"{low:g}, {high:g}]", symbol=symbol, field=name)
    return value


class ExchangeClock:
    """The exchange's time, as the stream knows it: from the pushes' own times ``ts`` and
    when they arrived (a monotonic local clock, in ms).

    Each of the last ``memory`` pushes says "the exchange's time is my ``ts`` plus the local
    time elapsed since I arrived"; the clock is the ``votes``-th latest of these. One or two
    pushes stamped far off (ahead or behind) cannot move it; when the exchange's time does
    jump (a reconnect after a pause, a replay exchange running fast, a local clock that
    stood still) it follows as soon as ``votes`` pushes agree, since every push, accepted or
    not, is remembered. With no push yet it knows nothing, and the first push sets it. A
    time before ``EARLIEST_MS`` or a day past the local wall clock is refused outright (and
    not remembered): no exchange has such a time.
    """

    def __init__(self, ahead_ms: int = CLOCK_AHEAD_MS, late_ms: int = CLOCK_LATE_MS,
                 votes: int = 3, memory: int = 32,
                 wall_clock: Callable[[], float] = time.time):
        self.ahead_ms = ahead_ms
        self.late_ms = late_ms
        self.votes = votes
        self.wall_clock = wall_clock
        self.recent: deque[int] = deque(maxlen=memory)  # ts - received, of each push

    def now(self, received_ms: int) -> int | None:
        if not self.recent:
            return None
        said = sorted(self.recent)  # 32 numbers: cheaper than a heap
        return received_ms + said[-min(self.votes, len(said))]

    def check(self, ts: int, received_ms: int) -> str | None:
        """Why ``ts`` (a push received at ``received_ms``) is off the clock, or None."""
        latest = int(self.wall_clock() * 1000) + WALL_AHEAD_MS
        if not EARLIEST_MS <= ts <= latest:
            return f"time {ts} is not between 2009-01-03 and a day past the local clock"
        clock = self.now(received_ms)
        self.recent.append(ts - received_ms)
        if clock is None or clock - self.late_ms <= ts <= clock + self.ahead_ms:
            return None
        return (f"time {ts} is {(ts - clock) / 1000:+.0f} s from the exchange clock "
                f"({clock})")


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
                 ticker_ms: int = 10_000, liquidation_window_ms: int = 300_000,
                 clock: ExchangeClock | None = None,
                 local_clock: Callable[[], float] = time.monotonic):
        self.clock = clock or ExchangeClock()
        self._local_clock = local_clock  # seconds, for when a push arrived
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
        received = int(self._local_clock() * 1000)
        kind, _, symbol = topic.rpartition(".")
        state = self.symbols.get(symbol)
        accepted = True
        try:
            if state is None:
                raise InputError("stream", f"a message for unsubscribed {topic}",
                                 symbol=symbol, field="topic")
            if not (kind.startswith("orderbook.") or kind in ("tickers", "allLiquidation")):
                raise InputError("stream", f"unknown topic {topic}", symbol=symbol,
                                 field="topic")
            ts = int(message["ts"])
            off_clock = self.clock.check(ts, received)
            if kind.startswith("orderbook."):
                resync, accepted = self._book(state, message, ts, topic, off_clock)
            else:
                source = "tickers" if kind == "tickers" else "liquidations"
                if off_clock is not None:
                    raise InputError(source, off_clock, symbol=symbol, field="ts")
                if kind == "tickers":
                    self._ticker(state, message, ts)
                else:
                    self._liquidations(state, message, ts)
                resync = None
        except (InputError, KeyError, TypeError, ValueError, AttributeError,
                OverflowError) as exc:
            self.counters.bad_messages += 1
            log.error("stream: bad %s message skipped: %s", topic, exc)
            return None
        if accepted:
            state.through = ts if state.through is None else max(state.through, ts)
        return resync

    def _book(self, state: SymbolStream, message: Mapping, ts: int, topic: str,
              off_clock: str | None) -> tuple[str | None, bool]:
        """Apply a book push; (the topic to subscribe again or None, whether it was kept)."""
        self.counters.book_messages += 1
        try:
            if off_clock is not None:
                state.book.invalidate()
                raise BadBook("orderbook", off_clock, symbol=state.symbol, field="ts")
            state.book.apply(message)
        except BookGap as exc:
            bad = isinstance(exc, BadBook)  # dropped: the book lacks it, needs a snapshot
            if bad:
                self.counters.bad_messages += 1
                if message.get("type") == "snapshot":
                    state.resyncing = False  # the snapshot asked for was bad: ask again
            if state.resyncing:  # asked already: the deltas in flight wait for the snapshot
                if bad:
                    log.error("stream: bad %s push dropped: %s", topic, exc)
                return None, not bad
            state.resyncing = True
            self.counters.resyncs += 1
            if bad:
                log.error("stream: bad %s push dropped: %s; asking for a new snapshot",
                          topic, exc)
            else:
                log.warning("stream: %s; asking for a new snapshot", exc)
            return topic, not bad
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
        return None, True

    def _ticker(self, state: SymbolStream, message: Mapping, ts: int) -> None:
        data = message["data"]
        if not isinstance(data, Mapping):
            raise InputError("tickers", f"data is a {type(data).__name__}, not an object",
                             symbol=state.symbol, field="data")
        if data.get("symbol", state.symbol) != state.symbol:
            raise InputError("tickers", f"a {data.get('symbol')} ticker on "
                             f"tickers.{state.symbol}", symbol=state.symbol, field="symbol")
        values = {}
        for name, column in TICKER_FIELDS.items():
            if name not in data:
                continue
            try:  # a bad value is dropped; the push's other fields are kept
                values[column] = check_ticker_value(state.symbol, name, data[name], ts)
            except InputError as exc:
                self.counters.bad_messages += 1
                log.error("stream: bad ticker value dropped: %s", exc)
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
                except (KeyError, TypeError, ValueError, OverflowError):
                    raise InputError("liquidations", f"bad time {item.get('T')!r}",
                                     symbol=state.symbol, field="T") from None
                check_liquidation(state.symbol, when, side, size, price, ts)
                state.liquidations.add(when, side, size, price)
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
        from sentiment.io.sources.bybit_ws import BybitStream
        from sentiment.io.staging import Staging

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
