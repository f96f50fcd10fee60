"""One SQLite database file as the stores use it: one writer thread that owns the only
writing connection, and a small pool of reader threads with their own connections in
WAL mode (readers never block the writer). With ``fsync`` on, ``synchronous=FULL``
makes every commit durable.

Other processes may write the same file (MX and IMAP workers, a command run beside
`serve`). SQLite makes a writer that finds the lock taken sleep and retry (1, 2, 5, 10
ms...), which at hundreds of commits a second idles every process in turn. So writers
first queue on an advisory lock of their own (``flock`` on ``<db>.writer``), which
hands over the moment the previous writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from letterlock.errors import AlreadyExists, StorageError

T = TypeVar("T")


class SqliteDb:
    """A SQLite file with one writer thread and a small pool of reader threads."""

    def __init__(self, path: Path, schema: str, *, fsync: bool = True, readers: int = 3) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"w-{path.stem}")
        self._readers = ThreadPoolExecutor(max_workers=readers,
                                           thread_name_prefix=f"r-{path.stem}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer_lock = os.open(path.with_name(path.name + ".writer"),
                                    os.O_RDWR | os.O_CREAT, 0o600)
        conn = self._connect()
        with conn:
            conn.executescript(schema)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'OFF'}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T],
                        durable: bool = True) -> T:
        conn = self._connect()
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        relaxed = self._fsync and not durable
        try:
            if relaxed:
                # WAL with synchronous=NORMAL: the commit is atomic and survives a crash
                # of the process, but is flushed with the next durable commit (or
                # checkpoint) instead of its own fsync.
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path.name}: {exc}") from exc
        finally:
            if relaxed:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=FULL")
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path.name}: {exc}") from exc

    async def write(self, fn: Callable[[sqlite3.Connection], T], *,
                    durable: bool = True) -> T:
        """Run ``fn`` in one IMMEDIATE transaction on the writer thread. With
        ``durable`` False the commit does not wait for its own flush to stable storage
        (see _in_transaction): for changes a power cut may undo without losing mail."""
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, self._in_transaction, fn, durable)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a read transaction (a consistent snapshot)."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, fn)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            if self._writer_lock >= 0:
                os.close(self._writer_lock)
                self._writer_lock = -1


def ts_text(dt: datetime) -> str:
    """A timestamp as stored (ISO 8601 text)."""
    return dt.isoformat()


def ts_parse(text: str) -> datetime:
    return datetime.fromisoformat(text)
