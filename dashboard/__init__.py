"""The Streamlit dashboard (read-only): ``streamlit run dashboard/app.py``."""
