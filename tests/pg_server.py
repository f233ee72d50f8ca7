"""A throwaway PostgreSQL server from Debian's package, for the tests and the benchmark."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def postgres_binaries() -> str | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl`` (Debian's
    ``postgresql`` package; ``make test`` installs it), or None."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.path.exists(os.path.join(d, "initdb"))
             and os.path.exists(os.path.join(d, "pg_ctl"))]
    return max(found, key=lambda d: int(d.split("/")[-2])) if found else None


@contextmanager
def throwaway_postgres(bin_dir: str) -> Iterator[str]:
    """A PostgreSQL server on a free port of 127.0.0.1 (trust authentication, no Unix
    socket, no fsync), its data in a temporary directory removed afterwards; yields
    ``postgresql://postgres@127.0.0.1:PORT`` (no database name). PostgreSQL refuses to run
    as root: the server then runs as the ``postgres`` OS user."""
    as_user: list[str] = []
    directory = tempfile.mkdtemp(prefix="sentiment-pg-")
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(directory, "data")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        subprocess.run([*as_user, f"{bin_dir}/initdb", "-D", data, "-U", "postgres",
                        "--auth=trust", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True)
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
                   "-c fsync=off -c max_connections=100")
        subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-w",
                        "-t", "60", "-l", os.path.join(directory, "server.log"), "start"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    """A new, empty database on ``server``: its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
