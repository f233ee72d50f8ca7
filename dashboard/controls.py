"""Sidebar selectors whose state lives in the URL's query parameters, so a view can be
shared: ``?symbol=ETHUSDT&interval=240&from=2022-06-01&to=2022-06-30``. Without ``to`` the
range follows the newest row as the live job writes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import queries
from sentiment.config import Config
from sentiment.errors import SentimentError
from sentiment.models import INTERVAL_MINUTES
from sentiment.settings import Settings


def short_duration(minutes: int) -> str:
    """A length in the largest whole unit: 5m, 4h, 1d, 1w."""
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


#: Interval code -> its short name in the selector ("60" -> "1h").
INTERVAL_NAMES = {code: short_duration(minutes) for code, minutes in INTERVAL_MINUTES.items()}


def _select(label: str, options: list[str], param: str, fmt=str) -> str:
    wanted = st.query_params.get(param) or st.session_state.get(f"keep_{param}")
    index = options.index(wanted) if wanted in options else 0
    value = st.sidebar.selectbox(label, options, index=index, format_func=fmt)
    st.query_params[param] = value
    st.session_state[f"keep_{param}"] = value
    return value


def interval(options: list[str]) -> str:
    return _select("Interval", options, "interval", lambda c: INTERVAL_NAMES.get(c, c))


def symbol(options: list[str]) -> str:
    return _select("Symbol", options, "symbol")


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def time_range(first: pd.Timestamp, last: pd.Timestamp, default_days: int
               ) -> tuple[dt.datetime, dt.datetime]:
    """The chosen [start, end) in bar open times: whole UTC days from ``from`` to ``to``;
    without ``to``, up to the newest row."""
    lo, hi = first.date(), last.date()
    start = _date(st.query_params.get("from")) or max(lo, hi - dt.timedelta(days=default_days))
    end = _date(st.query_params.get("to"))
    start = min(max(start, lo), hi)
    shown_end = hi if end is None else min(max(end, start), hi)
    picked = st.sidebar.date_input("Range (UTC)", value=(start, shown_end), min_value=lo,
                                   max_value=hi, format="YYYY-MM-DD")
    if isinstance(picked, tuple | list) and len(picked) == 2:
        start, chosen = picked
        if chosen != shown_end:
            end = None if chosen >= hi else chosen
    st.query_params["from"] = start.isoformat()
    if end is None:
        st.query_params.pop("to", None)
    else:
        st.query_params["to"] = end.isoformat()
    begin = dt.datetime.combine(start, dt.time())
    if end is None:
        return begin, dt.datetime(2200, 1, 1)
    return begin, dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1)


def explain_no_data(message: str, db_path: str) -> None:
    """The friendly empty state: what is missing and the command that fills it."""
    st.info(f"No data yet: {message} Build it from the bundled recorded data, offline, with:",
            icon=":material/database:")
    st.code("make demo", language="bash")
    st.caption(f"or run the live loop with `make up`. The dashboard reads {db_path} "
               "(set SENTIMENT_DB to read another file).")


def busy_sentence(refresh_seconds: float) -> str:
    """What a page says while a writer holds the database and it has nothing to show."""
    return (f"The database is busy: the pipeline is writing to it; this page retries in "
            f"{refresh_seconds:g} s.")


def explain(exc: queries.Unavailable, db_path: str, refresh_seconds: float) -> None:
    """One sentence for a database that cannot show anything now (never a traceback)."""
    if isinstance(exc, queries.NoData):
        explain_no_data(str(exc), db_path)
    elif isinstance(exc, queries.Busy):
        st.warning(busy_sentence(refresh_seconds), icon=":material/hourglass_top:")
    else:
        st.warning(f"{exc} This page retries in {refresh_seconds:g} s.",
                   icon=":material/error:")


def busy_note(db_path: str) -> None:
    """A note above a view drawn from the last good read, while the database is busy."""
    when = queries.showing_as_of(db_path)
    if when is not None:
        st.warning(f"Database busy (the pipeline is writing): showing data as of "
                   f"{when:%Y-%m-%d %H:%M:%S} UTC; this page retries at its next refresh.")


def context() -> tuple[Settings, Config]:
    """:func:`queries.context`; a configuration or settings error is one red sentence and
    the page stops (it names the file and the key to fix)."""
    try:
        return queries.context()
    except SentimentError as exc:
        st.error(f"The configuration cannot be used: {exc}", icon=":material/settings:")
        st.stop()
        raise  # unreachable: st.stop() raises


def _retry_when_readable(db_path: str, refresh_seconds: float) -> None:
    """Rerun the whole page once the database can be read (a page stopped at its head has
    no refreshing part of its own)."""
    @st.fragment(run_every=refresh_seconds)
    def retry() -> None:
        try:
            queries.extents(db_path)
        except queries.Unavailable:
            return
        st.rerun()

    retry()


def page(title: str) -> tuple[Settings, Config, pd.DataFrame]:
    """The head of a page over stored data: its title, the settings, the configuration and
    what is stored (:func:`queries.extents`). Without data, or while a writer holds the
    database, the page says so in one sentence, stops here, and reruns once it can read."""
    settings, config = context()
    st.title(title)
    try:
        extents = queries.extents(settings.db_path)
    except queries.Unavailable as exc:
        explain(exc, settings.db_path, config.dashboard.refresh_seconds)
        _retry_when_readable(settings.db_path, config.dashboard.refresh_seconds)
        st.stop()
    return settings, config, extents


def symbol_and_interval(extents: pd.DataFrame, config: Config
                        ) -> tuple[str, str, pd.DataFrame]:
    """The chosen symbol and interval (the configured intervals the symbol has history at),
    and their row of ``extents``; the page stops with a note when there is none."""
    chosen = symbol(sorted(extents["symbol"].unique()))
    stored = set(extents.loc[extents["symbol"] == chosen, "interval"])
    code = interval([i for i in config.intervals if i in stored] or list(config.intervals))
    extent = extents[(extents["symbol"] == chosen) & (extents["interval"] == code)]
    if extent.empty:
        st.info(f"No {chosen} rows at interval {code} yet.")
        st.stop()
    return chosen, code, extent
