"""The control store (regions, domains, the address directory, settings) in one
PostgreSQL database: the scale-out counterpart of storage/sqlite_control.py."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg.errors

from letterlock.errors import AlreadyExists, UnknownAccount, UnknownRegion
from letterlock.storage.models import Domain, Region
from letterlock.storage.postgres_db import Conn, PostgresDb
from letterlock.storage.postgres_db import all_rows as _all
from letterlock.storage.postgres_db import one as _one

CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS regions (id TEXT PRIMARY KEY, country TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY, created TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS directory (
    address TEXT PRIMARY KEY,
    region_id TEXT NOT NULL REFERENCES regions(id)
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class PostgresControlStore:
    """The operator's directory and settings in one PostgreSQL database."""

    def __init__(self, url: str, *, max_connections: int = 4,
                 create_database: bool = True) -> None:
        self.db = PostgresDb(url, CONTROL_SCHEMA, max_size=max_connections,
                             create_database=create_database)

    async def open(self) -> None:
        await self.db.open()

    async def add_region(self, region: Region) -> None:
        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO regions VALUES (%s, %s)", (region.id, region.country))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"region {region.id} exists") from None

    async def list_regions(self) -> list[Region]:
        rows = await self.db.query(lambda c: _all(c, "SELECT id, country FROM regions ORDER BY id"))
        return [Region(r[0], r[1]) for r in rows]

    async def add_domain(self, name: str) -> Domain:
        domain = Domain(name, datetime.now(UTC))

        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO domains VALUES (%s, %s)", (name, domain.created))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"domain {name} exists") from None
        return domain

    async def list_domains(self) -> list[Domain]:
        rows = await self.db.query(
            lambda c: _all(c, "SELECT name, created FROM domains ORDER BY name"))
        return [Domain(r[0], r[1].astimezone(UTC)) for r in rows]

    async def assign(self, address: str, region_id: str) -> None:
        async def op(c: Conn) -> None:
            try:
                await c.execute("INSERT INTO directory VALUES (%s, %s)", (address, region_id))
            except psycopg.errors.ForeignKeyViolation:
                raise UnknownRegion(region_id) from None

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{address} exists") from None

    async def reassign(self, address: str, region_id: str) -> None:
        async def op(c: Conn) -> None:
            try:
                cur = await c.execute("UPDATE directory SET region_id=%s WHERE address=%s",
                                      (region_id, address))
            except psycopg.errors.ForeignKeyViolation:
                raise UnknownRegion(region_id) from None
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def unassign(self, address: str) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("DELETE FROM directory WHERE address=%s", (address,))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def lookup(self, address: str) -> str | None:
        row = await self.db.query(lambda c: _one(
            c, "SELECT region_id FROM directory WHERE address=%s", (address,)))
        return None if row is None else str(row[0])

    async def list_assignments(self) -> list[tuple[str, str]]:
        rows = await self.db.query(lambda c: _all(
            c, "SELECT address, region_id FROM directory ORDER BY address"))
        return [(r[0], r[1]) for r in rows]

    async def get_setting(self, key: str) -> str | None:
        row = await self.db.query(lambda c: _one(
            c, "SELECT value FROM settings WHERE key=%s", (key,)))
        return None if row is None else str(row[0])

    async def set_setting(self, key: str, value: str) -> None:
        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO settings VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            (key, value))

        await self.db.write(op)

    async def close(self) -> None:
        await self.db.close()
