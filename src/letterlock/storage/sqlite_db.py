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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from letterlock.errors import AlreadyExists, StorageError

T = TypeVar("T")


MAX_BATCH = 64
"""Writes committed together at most."""


@dataclass
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    durable: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], ok: bool, value: object) -> None:
    if future.done():
        return  # the caller was cancelled; the write happened (or not) all the same
    if ok:
        future.set_result(value)
    else:
        assert isinstance(value, BaseException)
        future.set_exception(value)


def _tell(write: _Write, ok: bool, value: object) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed
        write.loop.call_soon_threadsafe(_settle, write.future, ok, value)


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
        self._queue: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        try:
            conn = self._connect()
            with conn:
                conn.executescript(schema)
        except sqlite3.Error as exc:  # e.g. a damaged file: say which, keep no handle
            self.close()
            raise StorageError(f"{path.name}: {exc}") from exc

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

    def _drain(self) -> None:
        """Writer thread: run queued writes, in batches, until none are left."""
        try:
            while True:
                with self._queue_lock:
                    batch = self._queue[:MAX_BATCH]
                    del self._queue[:MAX_BATCH]
                    if not batch:
                        self._draining = False
                        return
                try:
                    self._run_batch(batch)
                except Exception as exc:  # e.g. the lock file could not be locked
                    failed = StorageError(f"{self.path.name}: {exc}")
                    for write in batch:
                        _tell(write, False, failed)
        except BaseException:
            with self._queue_lock:
                self._draining = False
            raise

    def _run_batch(self, batch: list[_Write]) -> None:
        """One transaction for the whole batch, each write in a savepoint of its own so
        one that fails leaves the others. Committed durably if any write asks for it;
        with ``synchronous=NORMAL`` otherwise (WAL: atomic, survives a crash of the
        process, flushed with the next durable commit or checkpoint)."""
        conn = self._connect()
        relaxed = self._fsync and not any(w.durable for w in batch)
        outcomes: list[tuple[bool, object]] = []
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        try:
            if relaxed:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for write in batch:
                    conn.execute("SAVEPOINT w")
                    try:
                        result = write.fn(conn)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                        outcomes.append((False, self._translate(exc)))
                    else:
                        conn.execute("RELEASE w")
                        outcomes.append((True, result))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            failed = StorageError(f"{self.path.name}: {exc}")
            outcomes = [(False, failed)] * len(batch)
        finally:
            if relaxed:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=FULL")
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
        for write, (ok, value) in zip(batch, outcomes, strict=True):
            _tell(write, ok, value)

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.IntegrityError):
            return AlreadyExists(str(exc))
        if isinstance(exc, sqlite3.Error):
            return StorageError(f"{self.path.name}: {exc}")
        return exc

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
        """Run ``fn`` atomically on the writer thread; its effects are committed (and,
        if ``durable``, on stable storage) when this returns. Writes that wait while
        another runs share the next transaction (group commit: one commit, one fsync,
        one turn of the cross-process lock for many), each in a savepoint of its own,
        in the order they were asked for. ``durable`` False: a power cut may undo the
        change (never one a durable write committed after it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queue.append(_Write(fn, durable, loop, future))
            start = not self._draining
            self._draining = True
        if start:
            self._writer.submit(self._drain)
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """Run ``fn`` in a read transaction (a consistent snapshot).

        ``inline``: run it on the caller's thread (the event loop) instead of a reader
        thread. Only for reads bounded by a small constant (a mailbox row, a few
        hundred messages found through an index): for those the hop to a thread and
        back costs more than the read: under imaptest's mixed load (10 clients,
        logout=0, 20 s) the server answered 15-20% more FETCH and APPEND commands with
        them inline than with every read on a thread (three runs each, alternated).
        A WAL reader never waits for the writer, so the loop is not held by writes;
        a read that grows with the mailbox must still go to a thread."""
        if inline:
            return self._read(fn)
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
