"""The SQLite control store: regions, domains, the directory and settings, under
``HOME/control``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from letterlock.errors import AlreadyExists, UnknownAccount
from letterlock.storage.models import Domain, Region
from letterlock.storage.sqlite_db import SqliteDb, ts_parse, ts_text

CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS regions (id TEXT PRIMARY KEY, country TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS directory (
    address TEXT PRIMARY KEY,
    region_id TEXT NOT NULL REFERENCES regions(id)
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteControlStore:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = SqliteDb(path, CONTROL_SCHEMA, fsync=fsync)

    async def add_region(self, region: Region) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO regions VALUES (?, ?)", (region.id, region.country))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"region {region.id} exists") from None

    async def list_regions(self) -> list[Region]:
        rows = await self.db.read(
            lambda c: c.execute("SELECT id, country FROM regions ORDER BY id").fetchall())
        return [Region(*row) for row in rows]

    async def add_domain(self, name: str) -> Domain:
        domain = Domain(name, datetime.now(UTC))

        def op(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO domains VALUES (?, ?)", (name, ts_text(domain.created)))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"domain {name} exists") from None
        return domain

    async def list_domains(self) -> list[Domain]:
        rows = await self.db.read(
            lambda c: c.execute("SELECT name, created FROM domains ORDER BY name").fetchall())
        return [Domain(name, ts_parse(created)) for name, created in rows]

    async def assign(self, address: str, region_id: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO directory VALUES (?, ?)", (address, region_id))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{address} exists") from None

    async def reassign(self, address: str, region_id: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE directory SET region_id=? WHERE address=?",
                            (region_id, address))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def unassign(self, address: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM directory WHERE address=?", (address,)).rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def lookup(self, address: str) -> str | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT region_id FROM directory WHERE address=?", (address,)).fetchone())
        return None if row is None else str(row[0])

    async def list_assignments(self) -> list[tuple[str, str]]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT address, region_id FROM directory ORDER BY address").fetchall())
        return [(a, r) for a, r in rows]

    async def get_setting(self, key: str) -> str | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT value FROM settings WHERE key=?", (key,)).fetchone())
        return None if row is None else str(row[0])

    async def set_setting(self, key: str, value: str) -> None:
        await self.db.write(lambda c: c.execute(
            "INSERT INTO settings VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value)))

    async def close(self) -> None:
        self.db.close()
