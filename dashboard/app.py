"""Market Sentiment Tracker dashboard: ``streamlit run dashboard/app.py``.

Reads the database named by ``SENTIMENT_DB`` (read-only); never writes.
"""

import streamlit as st

st.set_page_config(page_title="Market Sentiment Tracker", page_icon=":material/insights:",
                   layout="wide")
st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/speed:", default=True),
    st.Page("pages/history.py", title="History", icon=":material/show_chart:"),
    st.Page("pages/exchange.py", title="Exchange and macro", icon=":material/currency_bitcoin:"),
    st.Page("pages/quality.py", title="Quality", icon=":material/fact_check:"),
]).run()
