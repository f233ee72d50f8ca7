"""`make up`'s ports are Make variables: every service of the target listens where the
command line says, and nothing is left on the default ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_up_ports_are_variables():
    ports = {"DAGSTER_PORT": "3101", "DASHBOARD_PORT": "8601", "REPLAY_PORT": "8865",
             "REPLAY_WS_PORT": "8866"}
    # -n: print the commands without running them; the venv's stamp counts as made.
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "up",
                          *(f"{k}={v}" for k, v in ports.items())],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "replay-server --port 8865" in out and "--ws-port 8866" in out
    assert "http://127.0.0.1:8865" in out and "ws://127.0.0.1:8866/v5/public/linear" in out
    assert "--server.port 8601" in out
    assert "dagster dev -h 127.0.0.1 -p 3101" in out
    for default in ("3000", "8501", "8765", "8766"):
        assert default not in out, default
    defaults = subprocess.run(["make", "-n", "-o", ".venv/.installed", "up"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=True).stdout
    assert "-p 3000" in defaults and "--server.port 8501" in defaults
    assert "--port 8765" in defaults and "--ws-port 8766" in defaults
