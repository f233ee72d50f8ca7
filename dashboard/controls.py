"""Sidebar selectors whose state lives in the URL's query parameters, so a view can be
shared: ``?symbol=ETHUSDT&interval=240&from=2022-06-01&to=2022-06-30``. Without ``to`` the
range follows the newest row as the live job writes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import queries

INTERVAL_NAMES = {"1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h",
                  "120": "2h", "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w"}


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
