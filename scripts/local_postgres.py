"""A PostgreSQL server of this machine from Debian's package: for ``make up-postgres`` (a
server kept in ``data/postgres``), the tests and the benchmarks (a throwaway one).

    python scripts/local_postgres.py start DIR [--port PORT]   # prints the server's URL
    python scripts/local_postgres.py stop DIR
    python scripts/local_postgres.py createdb URL NAME...       # the missing ones
    python scripts/local_postgres.py dagster-env URL NAME       # DAGSTER_PG_* of a database

The server listens on 127.0.0.1 only (trust authentication for the ``postgres`` role, no
Unix socket). PostgreSQL refuses to run as root: as root, the server runs as the
``postgres`` OS user, which then owns ``DIR``.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_binaries() -> str | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl`` (Debian's
    ``postgresql`` package; ``make test`` installs it), or None."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.path.exists(os.path.join(d, "initdb"))
             and os.path.exists(os.path.join(d, "pg_ctl"))]
    return max(found, key=lambda d: int(d.split("/")[-2])) if found else None


def _as_user(directory: str) -> list[str]:
    """The command prefix that runs the server's tools (as ``postgres`` when root)."""
    if os.geteuid() != 0:
        return []
    import pwd

    user = pwd.getpwnam("postgres")
    os.chown(directory, user.pw_uid, user.pw_gid)  # what the server creates is its own
    return ["runuser", "-u", "postgres", "--"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(bin_dir: str, directory: str, port: int | None = None, *, durable: bool = True
          ) -> str:
    """Start the server whose files are in ``directory`` (created by ``initdb`` when
    empty) on ``port`` of 127.0.0.1 (a free one by default); returns
    ``postgresql://postgres@127.0.0.1:PORT``. ``durable=False`` turns fsync off (tests)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    as_user = _as_user(directory)
    data = os.path.join(directory, "data")
    running = subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", data, "status"],
                             capture_output=True)
    if running.returncode == 0:  # already up (a second start): its port is in the pid file
        lines = Path(data, "postmaster.pid").read_text().splitlines()
        return f"postgresql://postgres@127.0.0.1:{int(lines[3])}"
    port = port or free_port()
    if not os.path.exists(os.path.join(data, "PG_VERSION")):
        made = subprocess.run([*as_user, f"{bin_dir}/initdb", "-D", data, "-U", "postgres",
                               "--auth=trust", "--encoding=UTF8", "--no-sync"],
                              capture_output=True, text=True)
        if made.returncode != 0:
            hint = (" (the server runs as the postgres user, which must be able to reach "
                    f"{directory}: pick a directory it can enter)" if as_user else "")
            raise RuntimeError(f"initdb failed in {directory}{hint}: {made.stderr.strip()}")
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
               "-c max_connections=100" + ("" if durable else " -c fsync=off"))
    done = subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-w",
                           "-t", "60", "-l", os.path.join(directory, "server.log"), "start"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        log = Path(directory, "server.log")
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start in {directory}: {done.stderr}{tail}")
    return f"postgresql://postgres@127.0.0.1:{port}"


def stop(bin_dir: str, directory: str, *, mode: str = "fast") -> None:
    """Stop the server of ``directory`` (nothing when it is not running)."""
    subprocess.run([*_as_user(directory), f"{bin_dir}/pg_ctl", "-D",
                    os.path.join(directory, "data"), "-m", mode, "stop"], capture_output=True)


@contextmanager
def throwaway_postgres(bin_dir: str) -> Iterator[str]:
    """A server on a free port (fsync off), its files in a temporary directory removed
    afterwards; yields ``postgresql://postgres@127.0.0.1:PORT`` (no database name)."""
    directory = tempfile.mkdtemp(prefix="sentiment-pg-")
    try:
        yield start(bin_dir, directory, durable=False)
    finally:
        stop(bin_dir, directory, mode="immediate")
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server: str, name: str, *, exist_ok: bool = False) -> str:
    """A new, empty database on ``server`` (kept as it is when ``exist_ok`` and it exists):
    its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              [name]).fetchone()
        if not (exist_ok and exists):
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def dagster_env(url: str, name: str) -> dict[str, str]:
    """The variables ``deploy/dagster/dagster.yaml`` reads for database ``name`` of the
    server at ``url``."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return {"DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
            "DAGSTER_PG_PORT": str(parts.port or 5432),
            "DAGSTER_PG_USER": unquote(parts.username or "postgres"),
            "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
            "DAGSTER_PG_DB": name}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("start", help="start (and create) the server of DIR")
    up.add_argument("directory")
    up.add_argument("--port", type=int, default=None)
    down = commands.add_parser("stop", help="stop the server of DIR")
    down.add_argument("directory")
    create = commands.add_parser("createdb", help="create the databases that are missing")
    create.add_argument("url")
    create.add_argument("names", nargs="+")
    env = commands.add_parser("dagster-env", help="print the DAGSTER_PG_* variables "
                              "(shell exports) of database NAME at URL")
    env.add_argument("url")
    env.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "dagster-env":
        for key, value in dagster_env(args.url, args.name).items():
            print(f"export {key}={shlex.quote(value)}")
        return
    if args.command == "createdb":
        for name in args.names:
            create_database(args.url, name, exist_ok=True)
        return
    bin_dir = postgres_binaries()
    if bin_dir is None:
        sys.exit("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
                 "apt-get install postgresql")
    if args.command == "start":
        print(start(bin_dir, args.directory, args.port))
    else:
        stop(bin_dir, args.directory)


if __name__ == "__main__":
    main()
