"""When a bar's row is final: the publication rules (DESIGN 8.3), in one place.

A bar's row is *final* once every slower source has published what that bar may use. The
live job keeps its checkpoint at the last final bar and rewrites the rows after it on its
next run; the HMM retrain trains at the newest boundary that is final, so its model equals
the one a later backfill trains there.

=================  ===================================================================
source             a bar closing at ``t`` is final for it when ...
=================  ===================================================================
open interest      the record stamped ``t - period`` (the last one usable at t) is stored
long/short ratio   likewise
funding            the newest settlement stored is less than 8 h before ``t``
Fear & Greed       the day of ``t`` is stored
live stream        ``t`` is a flush old and the running stream staged every message up to it
=================  ===================================================================

A source with no stored data at all is not waited for; neither is a stream that has staged
nothing for ``stream.alive_seconds`` (it is stopped: its bars have no stream data, and the
capitulation rule falls back to its price proxy).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from sentiment.config import Config
from sentiment.core.timeutil import naive_utc_datetime
from sentiment.io.store import Store, named_queries
from sentiment.models import PERIOD_MINUTES

FUNDING_INTERVAL = dt.timedelta(hours=8)  # Bybit's settlement interval for BTC/ETH perpetuals
FAR_FUTURE = dt.datetime(2200, 1, 1)
_MS = dt.timedelta(milliseconds=1)


Newest = dict[tuple[str, str | None, str | None], dt.datetime]


def newest_rows(store: Store) -> Newest:
    """(table, symbol, interval or period) -> the newest stored time, in one query."""
    frame = store.query(named_queries("queries.sql")["newest_rows"], read_only=False)
    out: Newest = {}
    for row in frame.itertuples(index=False):
        if not pd.isna(row.newest):
            symbol = None if pd.isna(row.symbol) else row.symbol
            code = None if pd.isna(row.code) else row.code
            out[(row.tbl, symbol, code)] = naive_utc_datetime(row.newest)
    return out


#: A liquidation is pushed a few hundred ms after its time: the stream's ``through`` must
#: pass a bar's close by this much before the bar's stream data count as complete.
STREAM_GRACE = dt.timedelta(seconds=5)


def stream_limits(store: Store, config: Config, now: dt.datetime) -> dict[str, dt.datetime]:
    """Per symbol, how far the stream's data are complete: up to one flush before ``now``
    (a stream that has just started may not have staged its first seconds yet), and no
    further than a *running* stream has staged (a stopped one is not waited for). Empty
    when the stream inputs are switched off."""
    ex = config.exchange_data
    if not (ex.liquidations or ex.orderbook_imbalance):
        return {}
    limits = {s: now - dt.timedelta(seconds=config.stream.flush_seconds)
              for s in config.symbols}
    alive = now - dt.timedelta(seconds=config.stream.alive_seconds)
    for row in store.read("stream_state").itertuples(index=False):
        through = naive_utc_datetime(row.through)
        if row.symbol in limits and through >= alive:
            limits[row.symbol] = min(limits[row.symbol], through)
    return limits


def final_until_of(newest: Newest, config: Config, symbol: str,
                   stream: dt.datetime | None = None) -> dt.datetime:
    """The latest bar close whose slower sources have all published (FAR_FUTURE if none
    is awaited); ``stream`` is how far ``symbol``'s stream data are complete."""
    ex = config.exchange_data
    limits = [FAR_FUTURE]
    if stream is not None:
        limits.append(stream - STREAM_GRACE)
    if ex.open_interest:
        code = ex.open_interest_interval
        last = newest.get(("open_interest", symbol, code))
        if last is not None:
            limits.append(last + dt.timedelta(minutes=PERIOD_MINUTES[code]))
    if ex.long_short_ratio:
        code = ex.long_short_period
        last = newest.get(("long_short_ratio", symbol, code))
        if last is not None:
            limits.append(last + dt.timedelta(minutes=PERIOD_MINUTES[code]))
    if ex.funding_rate:
        last = newest.get(("funding_rates", symbol, None))
        if last is not None:
            limits.append(last + FUNDING_INTERVAL - _MS)
    if config.external_data.fear_greed:
        last = newest.get(("fear_greed", None, None))
        if last is not None:
            limits.append(last + dt.timedelta(days=1) - _MS)
    return min(limits)
