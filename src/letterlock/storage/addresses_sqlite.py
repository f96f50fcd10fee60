"""SQLite implementations of the address contracts (address_contracts.py).

The control half lives in ``HOME/control/addresses.sqlite3``; each region's half in
``HOME/regions/<id>/addresses.sqlite3``, beside that region's cell, so what links an
address to an account never leaves the account's region.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.address_contracts import BOOK_SCHEMA, AddressKind, directory_schema
from letterlock.storage.sqlite_db import SqliteDb

ADDRESSES_DB = "addresses.sqlite3"

DIRECTORY_SCHEMA = directory_schema("TEXT NOT NULL")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqliteAddressDirectory:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = SqliteDb(path, DIRECTORY_SCHEMA, fsync=fsync, readers=2)

    async def add_name(self, address: str, kind: AddressKind) -> None:
        try:
            await self.db.write(lambda c: c.execute(
                "INSERT INTO address_names VALUES (?, ?, ?)", (address, str(kind), _now())))
        except AlreadyExists:
            raise AlreadyExists(f"{address} exists") from None

    async def remove_name(self, address: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM address_routes WHERE address=?", (address,))
            if c.execute("DELETE FROM address_names WHERE address=?",
                         (address,)).rowcount == 0:
                raise NotFound(f"no alias, group or catch-all {address}")

        await self.db.write(op)

    async def get_name(self, address: str) -> AddressKind | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT kind FROM address_names WHERE address=?", (address,)).fetchone())
        return None if row is None else AddressKind(row[0])

    async def list_names(self) -> list[tuple[str, AddressKind]]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT address, kind FROM address_names ORDER BY address").fetchall())
        return [(str(a), AddressKind(k)) for a, k in rows]

    async def set_route(self, address: str, region_id: str, on: bool) -> None:
        sql = ("INSERT OR IGNORE INTO address_routes VALUES (?, ?)" if on else
               "DELETE FROM address_routes WHERE address=? AND region_id=?")
        await self.db.write(lambda c: c.execute(sql, (address, region_id)))

    async def routes(self, address: str) -> list[str]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT region_id FROM address_routes WHERE address=? ORDER BY region_id",
            (address,)).fetchall())
        return [str(r[0]) for r in rows]

    async def add_domain_alias(self, alias: str, target: str) -> None:
        try:
            await self.db.write(lambda c: c.execute(
                "INSERT INTO domain_aliases VALUES (?, ?, ?)", (alias, target, _now())))
        except AlreadyExists:
            raise AlreadyExists(f"domain alias {alias} exists") from None

    async def remove_domain_alias(self, alias: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM domain_aliases WHERE alias=?", (alias,)).rowcount == 0:
                raise NotFound(f"no domain alias {alias}")

        await self.db.write(op)

    async def domain_alias_target(self, alias: str) -> str | None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT target FROM domain_aliases WHERE alias=?", (alias,)).fetchone())
        return None if row is None else str(row[0])

    async def list_domain_aliases(self) -> list[tuple[str, str]]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT alias, target FROM domain_aliases ORDER BY alias").fetchall())
        return [(str(a), str(t)) for a, t in rows]

    async def close(self) -> None:
        self.db.close()


class SqliteAddressBook:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = SqliteDb(path, BOOK_SCHEMA, fsync=fsync, readers=2)

    async def add_target(self, address: str, account: str, kind: AddressKind) -> None:
        try:
            await self.db.write(lambda c: c.execute(
                "INSERT INTO address_targets VALUES (?, ?, ?)", (address, account, str(kind))))
        except AlreadyExists:
            raise AlreadyExists(f"{address} already leads to {account}") from None

    async def remove_target(self, address: str, account: str) -> bool:
        cur = await self.db.write(lambda c: c.execute(
            "DELETE FROM address_targets WHERE address=? AND account=?", (address, account)))
        return bool(cur.rowcount)

    async def targets(self, address: str) -> list[str]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT account FROM address_targets WHERE address=? ORDER BY account",
            (address,)).fetchall())
        return [str(r[0]) for r in rows]

    async def addresses_of(self, account: str) -> list[tuple[str, AddressKind]]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT address, kind FROM address_targets WHERE account=? ORDER BY address",
            (account,)).fetchall())
        return [(str(a), AddressKind(k)) for a, k in rows]

    async def remove_account(self, account: str) -> list[tuple[str, AddressKind]]:
        def op(c: sqlite3.Connection) -> list[tuple[str, AddressKind]]:
            rows = c.execute("SELECT address, kind FROM address_targets WHERE account=? "
                             "ORDER BY address", (account,)).fetchall()
            c.execute("DELETE FROM address_targets WHERE account=?", (account,))
            c.execute("DELETE FROM send_as WHERE account=?", (account,))
            return [(str(a), AddressKind(k)) for a, k in rows]

        return await self.db.write(op)

    async def set_grant(self, account: str, address: str, on: bool) -> bool:
        sql = ("INSERT OR IGNORE INTO send_as VALUES (?, ?)" if on else
               "DELETE FROM send_as WHERE account=? AND address=?")
        cur = await self.db.write(lambda c: c.execute(sql, (account, address)))
        return bool(cur.rowcount)

    async def grants(self, account: str) -> list[str]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT address FROM send_as WHERE account=? ORDER BY address",
            (account,)).fetchall())
        return [str(r[0]) for r in rows]

    async def close(self) -> None:
        self.db.close()
