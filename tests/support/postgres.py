"""A PostgreSQL server for tests, and a fresh database per test.

``LETTERLOCK_TEST_POSTGRES_URL`` names a server to use (any database on it: tests
create and drop their own). Without it, a throwaway cluster is made in a temporary
directory with the ``initdb``/``pg_ctl`` of the Debian ``postgresql`` package, run as
the ``postgres`` user when we are root (PostgreSQL refuses to run as root). If neither
is possible the tests that need PostgreSQL are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

ENV = "LETTERLOCK_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class PostgresServer:
    url: str
    """A URL of the server's maintenance database (to create and drop databases)."""

    def database_url(self, name: str) -> str:
        return make_conninfo(self.url, dbname=name)

    def url_template(self, prefix: str) -> str:
        """A ``{region}`` template, as ``storage.postgres_url`` takes."""
        return make_conninfo(self.url, dbname=f"{prefix}_REGION").replace("REGION", "{region}")

    def create_database(self) -> str:
        name = f"lltest_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_databases(self, prefix: str) -> None:
        """Drop every database whose name starts with ``prefix`` (force-closing users)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            names = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
                (len(prefix), prefix)).fetchall()]
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(name)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _throwaway_cluster() -> Iterator[PostgresServer]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip(f"PostgreSQL: {ENV} is not set and no initdb under /usr/lib/postgresql "
                    "(install the Debian package postgresql)")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL: running as root and there is no postgres user")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("PostgreSQL: running as root and runuser is missing")
        prefix = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="letterlock-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if owner is not None:
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    log = root / "server.log"

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            pytest.skip(f"PostgreSQL throwaway cluster: {Path(args[0]).name} failed: {tail}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync")
        # fsync=off: a test cluster is thrown away; durability is not what it tests.
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=300", "start")
        yield PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get(ENV, "")
    if url:
        try:
            with psycopg.connect(url, connect_timeout=5):
                pass
        except psycopg.Error as exc:
            pytest.skip(f"PostgreSQL: {ENV}={url} does not answer: {exc}")
        yield PostgresServer(make_conninfo(url, dbname="postgres"))
        return
    yield from _throwaway_cluster()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.database_url(name)
    finally:
        postgres_server.drop_databases(name)
