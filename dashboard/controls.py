"""Sidebar selectors whose state lives in the URL's query parameters, so a view can be
shared: ``?symbol=ETHUSDT&interval=240&from=2022-06-01&to=2022-06-30``. Without ``to`` the
range follows the newest row as the live job writes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import queries
from sentiment.config import Config
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
    st.info(f"{message} Build it from the bundled recorded data, offline, with:")
    st.code("make demo", language="bash")
    st.caption(f"or run the live loop with `make up`. The dashboard reads {db_path} "
               "(set SENTIMENT_DB to read another file).")


def explain_busy(message: str) -> None:
    st.warning("The pipeline is writing to the database; this page retries at its next "
               "refresh.")


def busy_note(db_path: str) -> None:
    """A note above a view drawn from the last good read, while the database is busy."""
    when = queries.showing_as_of(db_path)
    if when is not None:
        st.warning(f"Database busy (the pipeline is writing): showing data as of "
                   f"{when:%Y-%m-%d %H:%M:%S} UTC; this page retries at its next refresh.")


def page(title: str) -> tuple[Settings, Config, pd.DataFrame]:
    """The head of a page over stored data: its title, the settings, the configuration and
    what is stored (:func:`queries.extents`). Without data, or while a writer holds the
    database, the page says so and stops here."""
    settings, config = queries.context()
    st.title(title)
    try:
        extents = queries.extents(settings.db_path)
    except queries.NoData as exc:
        explain_no_data(str(exc), settings.db_path)
        st.stop()
    except queries.Busy as exc:
        explain_busy(str(exc))
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
