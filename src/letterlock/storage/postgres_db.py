"""The PostgreSQL engine under the control store and the cells (storage/postgres.py,
storage/postgres_control.py, storage/addresses_postgres.py): a connection pool per
database, made on first use (and the database with it), transactions of three kinds
(read-write, read-only snapshot, single query), and retries of deadlocks and
serialization failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from letterlock.errors import AlreadyExists, StorageError

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
Op = Callable[[Conn], Awaitable[T]]

DEFAULT_CHANNEL = "letterlock_changes"
_RETRIES = 5
_SCHEMA_LOCK = 0x6C6C5F736368  # advisory lock key serialising schema creation


def _database_of(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "")


class PostgresDb:
    """A connection pool on one database, with transactions that translate driver
    errors to :mod:`letterlock.errors` and retry deadlocks."""

    def __init__(self, url: str, schema: str, *, min_size: int = 1, max_size: int = 10,
                 create_database: bool = True) -> None:
        self.url = url
        self._schema = schema
        self._create_database = create_database
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False,
            kwargs={"autocommit": True},
            name=f"letterlock:{_database_of(url)}")
        self._opened = False
        self._closed = False
        self._open_lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect, creating the database (when allowed) and the schema if absent."""
        async with self._open_lock:
            if self._opened:
                return
            if self._closed:
                raise StorageError("store is closed")
            try:
                await self._ensure_database()
                conn = await psycopg.AsyncConnection.connect(self.url)
                async with conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    await conn.execute(self._schema)
                await self._pool.open(wait=True, timeout=30)
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL {_database_of(self.url)}: {exc}") from exc
            self._opened = True

    async def _ensure_database(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self.url)
        except psycopg.OperationalError:
            name = _database_of(self.url)
            if not self._create_database or not name or name == "postgres":
                raise
            # Ask the maintenance database whether ours exists (this does not depend
            # on the language of the server's error messages), and create it if not.
            admin = make_conninfo(self.url, dbname="postgres")
            async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as c:
                if await one(c, "SELECT 1 FROM pg_database WHERE datname=%s", (name,)):
                    raise
                # DuplicateDatabase: another process created it meanwhile.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    await c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return
        await conn.close()

    async def _run(self, op: Op[T], mode: str, durable: bool = True) -> T:
        if not self._opened:
            await self.open()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._pool.connection() as conn:
                    if mode == "write":
                        async with conn.transaction():
                            if not durable:
                                await conn.execute("SET LOCAL synchronous_commit TO OFF")
                            return await op(conn)
                    if mode == "query":  # one statement: its own snapshot, no BEGIN
                        return await op(conn)
                    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    try:
                        result = await op(conn)
                    except BaseException:
                        await conn.execute("ROLLBACK")
                        raise
                    await conn.execute("COMMIT")
                    return result
            except (psycopg.errors.DeadlockDetected,
                    psycopg.errors.SerializationFailure) as exc:
                if attempt >= _RETRIES:
                    raise StorageError(f"{_database_of(self.url)}: {exc}") from exc
                await asyncio.sleep(0.01 * attempt)
            except psycopg.errors.UniqueViolation as exc:
                raise AlreadyExists(str(exc).splitlines()[0]) from exc
            except psycopg.Error as exc:
                raise StorageError(f"{_database_of(self.url)}: {exc}") from exc

    async def write(self, op: Op[T], *, durable: bool = True) -> T:
        """Run ``op`` in one read-write transaction (committed, hence durable, on return;
        with ``durable`` False, committed without waiting for the WAL flush:
        ``synchronous_commit off``, for changes a power cut may undo)."""
        return await self._run(op, "write", durable)

    async def read(self, op: Op[T]) -> T:
        """Run ``op`` in a read-only REPEATABLE READ transaction (one snapshot)."""
        return await self._run(op, "read")

    async def query(self, op: Op[T]) -> T:
        """Run ``op``, which issues exactly one read statement, outside a transaction."""
        return await self._run(op, "query")

    async def close(self) -> None:
        async with self._open_lock:
            self._closed = True
            if self._opened:
                await self._pool.close()
                self._opened = False


Params = Sequence[Any] | Mapping[str, Any]


async def one(conn: Conn, query: str, params: Params = ()) -> tuple[Any, ...] | None:
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def all_rows(conn: Conn, query: str, params: Params = ()) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()
