"""The dashboard command as the README and `make demo` print it listens on loopback only."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from the kernel's socket tables)."""
    out = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port and len(address) == width:
                out.add(address)
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux socket tables")
def test_the_readme_dashboard_command_binds_loopback_only(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
         "--server.headless", "true", "--server.port", str(port)],
        cwd=ROOT, env={"SENTIMENT_DB": str(tmp_path / "none.duckdb"), "PATH": "/usr/bin:/bin",
                       "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _listeners(port):
            assert proc.poll() is None, "streamlit exited"
            assert time.monotonic() < deadline, "streamlit never listened"
            time.sleep(0.1)  # polling the kernel's table for the listener, not a fixed wait
        # 127.0.0.1 only: no wildcard (0.0.0.0 / ::) listener.
        assert _listeners(port) == {"0100007F"}
    finally:
        proc.terminate()
        proc.wait(30)
