"""PostgreSQL filter store: in each region's database (``{region}`` of
``storage.postgres_url``), on a small pool of its own."""

from __future__ import annotations

import time
from typing import Any

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.postgres import Conn, PostgresDb
from letterlock.storage.sieve_contracts import SieveRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS sieve_scripts (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    size INTEGER NOT NULL,
    active BOOLEAN NOT NULL DEFAULT false,
    delivery BYTEA,
    PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS sieve_vacation (
    account TEXT NOT NULL,
    hkey BYTEA NOT NULL,
    until DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account, hkey)
);
CREATE TABLE IF NOT EXISTS sieve_options (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
"""

POOL_SIZE = 2
_COLUMNS = "account, name, sealed, size, active, delivery"


def _record(row: tuple[Any, ...]) -> SieveRecord:
    account, name, sealed, size, active, delivery = row
    return SieveRecord(str(account), str(name), bytes(sealed), int(size), bool(active),
                       None if delivery is None else bytes(delivery))


class PostgresSieveStore:
    def __init__(self, url: str) -> None:
        self.db = PostgresDb(url, SCHEMA, max_size=POOL_SIZE)

    async def put(self, account: str, name: str, sealed: bytes, size: int,
                  delivery: bytes | None) -> None:
        async def op(c: Conn) -> None:
            await c.execute(
                "INSERT INTO sieve_scripts (account, name, sealed, size) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (account, name) DO UPDATE SET "
                "sealed=excluded.sealed, size=excluded.size, delivery=CASE WHEN "
                "sieve_scripts.active THEN %s::bytea ELSE NULL END",
                (account, name, sealed, size, delivery))

        await self.db.write(op)

    async def get(self, account: str, name: str) -> SieveRecord | None:
        async def op(c: Conn) -> SieveRecord | None:
            cur = await c.execute(f"SELECT {_COLUMNS} FROM sieve_scripts "
                                  "WHERE account=%s AND name=%s", (account, name))
            row = await cur.fetchone()
            return None if row is None else _record(row)

        return await self.db.query(op)

    async def list(self, account: str) -> list[SieveRecord]:
        async def op(c: Conn) -> list[SieveRecord]:
            cur = await c.execute(f"SELECT {_COLUMNS} FROM sieve_scripts "
                                  "WHERE account=%s ORDER BY name", (account,))
            return [_record(r) for r in await cur.fetchall()]

        return await self.db.query(op)

    async def rename(self, account: str, old: str, new: str) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("SELECT 1 FROM sieve_scripts WHERE account=%s AND "
                                  "name=%s", (account, new))
            if await cur.fetchone() is not None:
                raise AlreadyExists(f"script {new} exists")
            cur = await c.execute("UPDATE sieve_scripts SET name=%s WHERE account=%s "
                                  "AND name=%s", (new, account, old))
            if cur.rowcount == 0:
                raise NotFound(f"no script {old}")

        await self.db.write(op)

    async def delete(self, account: str, name: str) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("DELETE FROM sieve_scripts WHERE account=%s AND name=%s",
                                  (account, name))
            if cur.rowcount == 0:
                raise NotFound(f"no script {name}")

        await self.db.write(op)

    async def activate(self, account: str, name: str | None, delivery: bytes | None) -> None:
        async def op(c: Conn) -> None:
            if name is not None:
                cur = await c.execute("SELECT 1 FROM sieve_scripts WHERE account=%s "
                                      "AND name=%s", (account, name))
                if await cur.fetchone() is None:
                    raise NotFound(f"no script {name}")
            await c.execute("UPDATE sieve_scripts SET active=false, delivery=NULL "
                            "WHERE account=%s", (account,))
            if name is not None:
                await c.execute("UPDATE sieve_scripts SET active=true, delivery=%s "
                                "WHERE account=%s AND name=%s", (delivery, account, name))

        await self.db.write(op)

    async def active(self, account: str) -> SieveRecord | None:
        async def op(c: Conn) -> SieveRecord | None:
            cur = await c.execute(f"SELECT {_COLUMNS} FROM sieve_scripts "
                                  "WHERE account=%s AND active", (account,))
            row = await cur.fetchone()
            return None if row is None else _record(row)

        return await self.db.query(op)

    async def delete_account(self, account: str) -> None:
        async def op(c: Conn) -> None:
            await c.execute("DELETE FROM sieve_scripts WHERE account=%s", (account,))
            await c.execute("DELETE FROM sieve_vacation WHERE account=%s", (account,))
            await c.execute("DELETE FROM sieve_options WHERE account=%s", (account,))

        await self.db.write(op)

    async def option(self, account: str, name: str) -> str | None:
        async def op(c: Conn) -> str | None:
            cur = await c.execute("SELECT value FROM sieve_options WHERE account=%s "
                                  "AND name=%s", (account, name))
            row = await cur.fetchone()
            return None if row is None else str(row[0])

        return await self.db.query(op)

    async def set_option(self, account: str, name: str, value: str | None) -> None:
        async def op(c: Conn) -> None:
            if value is None:
                await c.execute("DELETE FROM sieve_options WHERE account=%s AND name=%s",
                                (account, name))
            else:
                await c.execute("INSERT INTO sieve_options VALUES (%s, %s, %s) ON CONFLICT "
                                "(account, name) DO UPDATE SET value=excluded.value",
                                (account, name, value))

        await self.db.write(op)

    async def options(self, account: str) -> dict[str, str]:
        async def op(c: Conn) -> dict[str, str]:
            cur = await c.execute("SELECT name, value FROM sieve_options WHERE account=%s",
                                  (account,))
            return {str(n): str(v) for n, v in await cur.fetchall()}

        return await self.db.query(op)

    async def vacation_until(self, account: str, key: bytes) -> float | None:
        async def op(c: Conn) -> float | None:
            cur = await c.execute("SELECT until FROM sieve_vacation WHERE account=%s "
                                  "AND hkey=%s", (account, key))
            row = await cur.fetchone()
            return None if row is None else float(row[0])

        return await self.db.query(op)

    async def remember_vacation(self, account: str, key: bytes, until: float) -> None:
        async def op(c: Conn) -> None:
            await c.execute("DELETE FROM sieve_vacation WHERE account=%s AND until<%s",
                            (account, time.time()))
            await c.execute("INSERT INTO sieve_vacation VALUES (%s, %s, %s) ON CONFLICT "
                            "(account, hkey) DO UPDATE SET until=excluded.until",
                            (account, key, until))

        await self.db.write(op)

    async def close(self) -> None:
        await self.db.close()
