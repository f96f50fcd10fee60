"""The SQLite engine's group commit: writes waiting together share one transaction,
each in its own savepoint, so one that fails leaves the others committed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from letterlock.errors import AlreadyExists, UnknownMailbox
from letterlock.storage.sqlite_db import SqliteDb

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


def insert(k: str, v: int) -> object:
    def op(c: sqlite3.Connection) -> int:
        c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v
    return op


def fail_after_insert(k: str) -> object:
    def op(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (?, 0)", (k,))
        raise UnknownMailbox("gone")  # a domain error half way through
    return op


async def test_writes_waiting_together_commit_together_and_fail_alone(
        tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.sqlite3", SCHEMA)
    try:
        batches: list[int] = []
        real = db._run_batch

        def counting(batch: list) -> None:  # type: ignore[type-arg]
            batches.append(len(batch))
            real(batch)

        db._run_batch = counting  # type: ignore[method-assign]
        ops = [insert(f"k{i}", i) for i in range(20)]
        ops[5] = fail_after_insert("half")
        ops[9] = insert("k1", 99)  # duplicate key
        results = await asyncio.gather(
            *(db.write(op, durable=i % 2 == 0) for i, op in enumerate(ops)),  # type: ignore[arg-type]
            return_exceptions=True)
        assert isinstance(results[5], UnknownMailbox)
        assert isinstance(results[9], AlreadyExists)
        assert [r for i, r in enumerate(results) if i not in (5, 9)] == [
            i for i in range(20) if i not in (5, 9)]
        rows = await db.read(lambda c: dict(c.execute("SELECT k, v FROM t").fetchall()))
        assert "half" not in rows and rows["k1"] == 1 and len(rows) == 18
        assert len(batches) < 20  # they shared transactions
    finally:
        db.close()


async def test_a_lone_write_still_commits(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.sqlite3", SCHEMA)
    try:
        assert await db.write(insert("a", 1)) == 1  # type: ignore[arg-type]
        with pytest.raises(AlreadyExists):
            await db.write(insert("a", 2))  # type: ignore[arg-type]
        assert await db.write(insert("b", 2), durable=False) == 2  # type: ignore[arg-type]
    finally:
        db.close()
    again = SqliteDb(tmp_path / "x.sqlite3", SCHEMA)
    try:
        assert await again.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 2
    finally:
        again.close()
