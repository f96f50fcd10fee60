"""PostgreSQL implementations of the address contracts (address_contracts.py): the
control half in the control database, each region's half in that region's database
(the ``{region}`` of ``storage.postgres_url``), each on a small pool of its own."""

from __future__ import annotations

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.address_contracts import BOOK_SCHEMA, AddressKind, directory_schema
from letterlock.storage.postgres import Conn, PostgresDb

DIRECTORY_SCHEMA = directory_schema("TIMESTAMPTZ NOT NULL DEFAULT now()")

POOL_SIZE = 3


class PostgresAddressDirectory:
    def __init__(self, url: str) -> None:
        self.db = PostgresDb(url, DIRECTORY_SCHEMA, max_size=POOL_SIZE)

    async def add_name(self, address: str, kind: AddressKind) -> None:
        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO address_names (address, kind) VALUES (%s, %s)",
                            (address, str(kind)))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{address} exists") from None

    async def remove_name(self, address: str) -> None:
        async def op(c: Conn) -> None:
            await c.execute("DELETE FROM address_routes WHERE address=%s", (address,))
            cur = await c.execute("DELETE FROM address_names WHERE address=%s", (address,))
            if cur.rowcount == 0:
                raise NotFound(f"no alias, group or catch-all {address}")

        await self.db.write(op)

    async def get_name(self, address: str) -> AddressKind | None:
        async def op(c: Conn) -> AddressKind | None:
            cur = await c.execute("SELECT kind FROM address_names WHERE address=%s",
                                  (address,))
            row = await cur.fetchone()
            return None if row is None else AddressKind(row[0])

        return await self.db.query(op)

    async def list_names(self) -> list[tuple[str, AddressKind]]:
        async def op(c: Conn) -> list[tuple[str, AddressKind]]:
            cur = await c.execute("SELECT address, kind FROM address_names ORDER BY address")
            return [(str(a), AddressKind(k)) for a, k in await cur.fetchall()]

        return await self.db.query(op)

    async def set_route(self, address: str, region_id: str, on: bool) -> None:
        sql = ("INSERT INTO address_routes VALUES (%s, %s) ON CONFLICT DO NOTHING" if on else
               "DELETE FROM address_routes WHERE address=%s AND region_id=%s")

        async def op(c: Conn) -> None:
            await c.execute(sql, (address, region_id))

        await self.db.write(op)

    async def routes(self, address: str) -> list[str]:
        async def op(c: Conn) -> list[str]:
            cur = await c.execute("SELECT region_id FROM address_routes WHERE address=%s "
                                  "ORDER BY region_id", (address,))
            return [str(r[0]) for r in await cur.fetchall()]

        return await self.db.query(op)

    async def add_domain_alias(self, alias: str, target: str) -> None:
        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO domain_aliases (alias, target) VALUES (%s, %s)",
                            (alias, target))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"domain alias {alias} exists") from None

    async def remove_domain_alias(self, alias: str) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("DELETE FROM domain_aliases WHERE alias=%s", (alias,))
            if cur.rowcount == 0:
                raise NotFound(f"no domain alias {alias}")

        await self.db.write(op)

    async def domain_alias_target(self, alias: str) -> str | None:
        async def op(c: Conn) -> str | None:
            cur = await c.execute("SELECT target FROM domain_aliases WHERE alias=%s",
                                  (alias,))
            row = await cur.fetchone()
            return None if row is None else str(row[0])

        return await self.db.query(op)

    async def list_domain_aliases(self) -> list[tuple[str, str]]:
        async def op(c: Conn) -> list[tuple[str, str]]:
            cur = await c.execute("SELECT alias, target FROM domain_aliases ORDER BY alias")
            return [(str(a), str(t)) for a, t in await cur.fetchall()]

        return await self.db.query(op)

    async def close(self) -> None:
        await self.db.close()


class PostgresAddressBook:
    def __init__(self, url: str) -> None:
        self.db = PostgresDb(url, BOOK_SCHEMA, max_size=POOL_SIZE)

    async def add_target(self, address: str, account: str, kind: AddressKind) -> None:
        async def op(c: Conn) -> None:
            await c.execute("INSERT INTO address_targets VALUES (%s, %s, %s)",
                            (address, account, str(kind)))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{address} already leads to {account}") from None

    async def remove_target(self, address: str, account: str) -> bool:
        async def op(c: Conn) -> bool:
            cur = await c.execute("DELETE FROM address_targets WHERE address=%s "
                                  "AND account=%s", (address, account))
            return bool(cur.rowcount)

        return await self.db.write(op)

    async def targets(self, address: str) -> list[str]:
        async def op(c: Conn) -> list[str]:
            cur = await c.execute("SELECT account FROM address_targets WHERE address=%s "
                                  "ORDER BY account", (address,))
            return [str(r[0]) for r in await cur.fetchall()]

        return await self.db.query(op)

    async def addresses_of(self, account: str) -> list[tuple[str, AddressKind]]:
        async def op(c: Conn) -> list[tuple[str, AddressKind]]:
            cur = await c.execute("SELECT address, kind FROM address_targets "
                                  "WHERE account=%s ORDER BY address", (account,))
            return [(str(a), AddressKind(k)) for a, k in await cur.fetchall()]

        return await self.db.query(op)

    async def remove_account(self, account: str) -> list[tuple[str, AddressKind]]:
        async def op(c: Conn) -> list[tuple[str, AddressKind]]:
            cur = await c.execute("DELETE FROM address_targets WHERE account=%s "
                                  "RETURNING address, kind", (account,))
            rows = sorted((str(a), AddressKind(k)) for a, k in await cur.fetchall())
            await c.execute("DELETE FROM send_as WHERE account=%s", (account,))
            return rows

        return await self.db.write(op)

    async def set_grant(self, account: str, address: str, on: bool) -> bool:
        sql = ("INSERT INTO send_as VALUES (%s, %s) ON CONFLICT DO NOTHING" if on else
               "DELETE FROM send_as WHERE account=%s AND address=%s")

        async def op(c: Conn) -> bool:
            cur = await c.execute(sql, (account, address))
            return bool(cur.rowcount)

        return await self.db.write(op)

    async def grants(self, account: str) -> list[str]:
        async def op(c: Conn) -> list[str]:
            cur = await c.execute("SELECT address FROM send_as WHERE account=%s "
                                  "ORDER BY address", (account,))
            return [str(r[0]) for r in await cur.fetchall()]

        return await self.db.query(op)

    async def close(self) -> None:
        await self.db.close()
