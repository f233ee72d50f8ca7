"""Ingestion assets: candles, funding rates, open interest, long/short ratio, Fear & Greed.

Each asset owns the table of its name. A run fetches every partition it was given first and
only then replaces exactly those partitions in one transaction, so a failed fetch (bad
response, exhausted retries) writes nothing and leaves what is stored untouched.
"""


import datetime as dt
from collections.abc import Callable

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from orchestration.partitions import (
    DateRun,
    daily_partitions,
    group_partition_keys,
    market_data_partitions,
)
from orchestration.resources import BybitResource, FearGreedResource, StoreResource
from sentiment.config import Config
from sentiment.store import TABLES, Slice

#: One pool for every writer of the DuckDB file: it allows one writing process at a time.
WRITER_POOL = "duckdb_writer"
GROUP = "market_data"


def _metadata(table: str, frame: pd.DataFrame, runs: list[DateRun], source: str) -> dict:
    spec = TABLES[table]
    meta: dict = {
        "dagster/row_count": MetadataValue.int(len(frame)),
        "partitions": MetadataValue.int(sum(r.days for r in runs)),
        "source": MetadataValue.text(source),
    }
    if not frame.empty:
        times = pd.to_datetime(frame[spec.time_column])
        meta["first"] = MetadataValue.text(str(times.min()))
        meta["last"] = MetadataValue.text(str(times.max()))
        if "symbol" in frame.columns:
            counts = frame.groupby("symbol").size()
            meta["rows_by_symbol"] = MetadataValue.json({k: int(v) for k, v in counts.items()})
    return meta


def _ingest(
    context: AssetExecutionContext,
    store: StoreResource,
    table: str,
    source: str,
    fetch: Callable[[str | None, dt.datetime, dt.datetime], pd.DataFrame],
    where: Callable[[str | None], dict],
) -> MaterializeResult:
    runs = group_partition_keys(list(context.partition_keys))
    frames, slices = [], []
    for run in runs:
        context.log.info(
            f"{table}: fetching {run.symbol or 'all'} {run.start:%Y-%m-%d}..{run.end:%Y-%m-%d} "
            f"({run.days} day(s))"
        )
        frame = fetch(run.symbol, run.start, run.end)
        frames.append(frame)
        slices.append(Slice(frame, run.start, run.end, where(run.symbol)))
    written = store.store().replace_slices(table, slices)
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    context.log.info(f"{table}: wrote {written} row(s) for {len(runs)} range(s)")
    return MaterializeResult(metadata=_metadata(table, combined, runs, source))


def build_market_data_assets(config: Config) -> list[AssetsDefinition]:
    """The five ingestion assets for this configuration."""
    partitions = market_data_partitions(config)
    intervals = list(config.intervals)
    oi_interval = config.exchange_data.open_interest_interval
    ls_period = config.exchange_data.long_short_period
    # One run for a whole backfill range: the fetch pages through the range once and the
    # write is one transaction (DESIGN 8.11).
    policy = BackfillPolicy.single_run()
    common = dict(
        partitions_def=partitions,
        backfill_policy=policy,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb", "python"},
    )

    @asset(
        description="Closed Bybit linear-perpetual candles for every configured interval "
        "(a bar belongs to the UTC date of its open time).",
        **common,
    )
    def candles(
        context: AssetExecutionContext, store: StoreResource, bybit: BybitResource
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            frames = [client.klines(symbol, iv, start, end) for iv in intervals]
            return pd.concat(frames, ignore_index=True)

        return _ingest(
            context, store, "candles", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "interval": intervals},
        )

    @asset(
        description="Settled Bybit funding rates (fraction per settlement).",
        **common,
    )
    def funding_rates(
        context: AssetExecutionContext, store: StoreResource, bybit: BybitResource
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            if not config.exchange_data.funding_rate:
                return _empty("funding_rates")
            return client.funding_history(symbol, start, end)

        return _ingest(
            context, store, "funding_rates", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol},
        )

    @asset(
        description=f"Bybit open interest per {oi_interval} (base coin).",
        **common,
    )
    def open_interest(
        context: AssetExecutionContext, store: StoreResource, bybit: BybitResource
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            if not config.exchange_data.open_interest:
                return _empty("open_interest")
            return client.open_interest(symbol, oi_interval, start, end)

        return _ingest(
            context, store, "open_interest", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "interval": oi_interval},
        )

    @asset(
        description=f"Bybit long/short account ratio per {ls_period} "
        "(buy_ratio = share of accounts net long).",
        **common,
    )
    def long_short_ratio(
        context: AssetExecutionContext, store: StoreResource, bybit: BybitResource
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            if not config.exchange_data.long_short_ratio:
                return _empty("long_short_ratio")
            return client.long_short_ratio(symbol, ls_period, start, end)

        return _ingest(
            context, store, "long_short_ratio", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "period": ls_period},
        )

    @asset(
        description="alternative.me Crypto Fear & Greed Index, one value per UTC day (0-100).",
        partitions_def=daily_partitions(config),
        backfill_policy=policy,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb", "python"},
    )
    def fear_greed(
        context: AssetExecutionContext, store: StoreResource, fear_greed_api: FearGreedResource
    ) -> MaterializeResult:
        client = fear_greed_api.client()
        history: list[pd.DataFrame] = []

        def fetch(_symbol, start, end):
            # API limit: alternative.me has no date range, only "the newest N days"; the whole
            # history is ~3000 rows, so fetch it once per run and slice it.
            if not history:
                history.append(client.history())
            frame = history[0]
            mask = (frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))
            return frame.loc[mask].reset_index(drop=True)

        return _ingest(context, store, "fear_greed", fear_greed_api.base_url, fetch, lambda _: {})

    return [candles, funding_rates, open_interest, long_short_ratio, fear_greed]


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(TABLES[table].all_columns))
