"""SQLite filter store: ``HOME/regions/<id>/sieve.sqlite3``, beside the region's cell."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.sieve_contracts import SieveRecord
from letterlock.storage.sqlite_db import SqliteDb

SIEVE_DB = "sieve.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sieve_scripts (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    size INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    delivery BLOB,
    PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS sieve_vacation (
    account TEXT NOT NULL,
    hkey BLOB NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (account, hkey)
);
CREATE TABLE IF NOT EXISTS sieve_options (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
"""

_COLUMNS = "account, name, sealed, size, active, delivery"


def _record(row: tuple[object, ...]) -> SieveRecord:
    account, name, sealed, size, active, delivery = row
    assert isinstance(sealed, bytes) and isinstance(size, int)
    return SieveRecord(str(account), str(name), sealed, size, bool(active),
                       delivery if isinstance(delivery, bytes) else None)


class SqliteSieveStore:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = SqliteDb(path, SCHEMA, fsync=fsync, readers=1)

    async def put(self, account: str, name: str, sealed: bytes, size: int,
                  delivery: bytes | None) -> None:
        await self.db.write(lambda c: c.execute(
            "INSERT INTO sieve_scripts (account, name, sealed, size) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account, name) DO UPDATE SET sealed=excluded.sealed, "
            "size=excluded.size, delivery=CASE WHEN active THEN ? ELSE NULL END",
            (account, name, sealed, size, delivery)))

    async def get(self, account: str, name: str) -> SieveRecord | None:
        row = await self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account=? AND name=?",
            (account, name)).fetchone())
        return None if row is None else _record(row)

    async def list(self, account: str) -> list[SieveRecord]:
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account=? ORDER BY name",
            (account,)).fetchall())
        return [_record(r) for r in rows]

    async def rename(self, account: str, old: str, new: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM sieve_scripts WHERE account=? AND name=?",
                         (account, new)).fetchone():
                raise AlreadyExists(f"script {new} exists")
            if c.execute("UPDATE sieve_scripts SET name=? WHERE account=? AND name=?",
                         (new, account, old)).rowcount == 0:
                raise NotFound(f"no script {old}")

        await self.db.write(op)

    async def delete(self, account: str, name: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM sieve_scripts WHERE account=? AND name=?",
                         (account, name)).rowcount == 0:
                raise NotFound(f"no script {name}")

        await self.db.write(op)

    async def activate(self, account: str, name: str | None, delivery: bytes | None) -> None:
        def op(c: sqlite3.Connection) -> None:
            if name is not None and not c.execute(
                    "SELECT 1 FROM sieve_scripts WHERE account=? AND name=?",
                    (account, name)).fetchone():
                raise NotFound(f"no script {name}")
            c.execute("UPDATE sieve_scripts SET active=0, delivery=NULL WHERE account=?",
                      (account,))
            if name is not None:
                c.execute("UPDATE sieve_scripts SET active=1, delivery=? "
                          "WHERE account=? AND name=?", (delivery, account, name))

        await self.db.write(op)

    async def active(self, account: str) -> SieveRecord | None:
        row = await self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account=? AND active=1",
            (account,)).fetchone())
        return None if row is None else _record(row)

    async def delete_account(self, account: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM sieve_scripts WHERE account=?", (account,))
            c.execute("DELETE FROM sieve_vacation WHERE account=?", (account,))
            c.execute("DELETE FROM sieve_options WHERE account=?", (account,))

        await self.db.write(op)

    async def option(self, account: str, name: str) -> str | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT value FROM sieve_options WHERE account=? AND name=?",
            (account, name)).fetchone())
        return None if row is None else str(row[0])

    async def set_option(self, account: str, name: str, value: str | None) -> None:
        def op(c: sqlite3.Connection) -> None:
            if value is None:
                c.execute("DELETE FROM sieve_options WHERE account=? AND name=?",
                          (account, name))
            else:
                c.execute("INSERT INTO sieve_options VALUES (?, ?, ?) ON CONFLICT "
                          "(account, name) DO UPDATE SET value=excluded.value",
                          (account, name, value))

        await self.db.write(op)

    async def options(self, account: str) -> dict[str, str]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT name, value FROM sieve_options WHERE account=?", (account,)).fetchall())
        return {str(n): str(v) for n, v in rows}

    async def vacation_until(self, account: str, key: bytes) -> float | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT until FROM sieve_vacation WHERE account=? AND hkey=?",
            (account, key)).fetchone())
        return None if row is None else float(row[0])

    async def remember_vacation(self, account: str, key: bytes, until: float) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM sieve_vacation WHERE account=? AND until<?",
                      (account, time.time()))
            c.execute("INSERT INTO sieve_vacation VALUES (?, ?, ?) ON CONFLICT "
                      "(account, hkey) DO UPDATE SET until=excluded.until",
                      (account, key, until))

        await self.db.write(op)

    async def close(self) -> None:
        self.db.close()
