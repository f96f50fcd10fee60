"""Operator accounts and their API tokens in ``HOME/control/operators.sqlite3``.

Operators are the people who run the service (``admin``), handle legal requests
(``legal``) or review them (``auditor``). They are not mail accounts and hold no key
to any mailbox. Passwords are stored only as Argon2id PHC strings; API tokens only as
their SHA-256 digest, so a copy of this file lets nobody log in.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.sqlite_db import SqliteDb

OPERATORS_DB = "operators.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,         -- Argon2id PHC string
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operator_tokens (
    digest BLOB PRIMARY KEY,        -- SHA-256 of the bearer token
    name TEXT NOT NULL REFERENCES operators(name),
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operator_tokens_expiry ON operator_tokens(expires);
"""


@dataclass(frozen=True)
class OperatorRow:
    name: str
    role: str
    password: str
    created: datetime


@dataclass(frozen=True)
class TokenRow:
    digest: bytes
    name: str
    created: datetime
    expires: datetime


_OPERATOR_COLS = "name, role, password, created"


def _operator(row: tuple[object, ...]) -> OperatorRow:
    name, role, password, created = row
    return OperatorRow(str(name), str(role), str(password), datetime.fromisoformat(str(created)))


class OperatorStore:
    """Async access to the operators database (SQLite off the event loop)."""

    def __init__(self, control_dir: Path, *, fsync: bool = True) -> None:
        self._db = SqliteDb(control_dir / OPERATORS_DB, SCHEMA, fsync=fsync)

    async def close(self) -> None:
        self._db.close()

    async def add(self, row: OperatorRow) -> None:
        """Raises AlreadyExists if the name is taken."""
        def fn(c: sqlite3.Connection) -> None:
            c.execute(f"INSERT INTO operators ({_OPERATOR_COLS}) VALUES (?,?,?,?)",
                      (row.name, row.role, row.password, row.created.isoformat()))
        try:
            await self._db.write(fn)
        except AlreadyExists:
            raise AlreadyExists(f"operator {row.name} exists") from None

    async def get(self, name: str) -> OperatorRow | None:
        def fn(c: sqlite3.Connection) -> OperatorRow | None:
            r = c.execute(f"SELECT {_OPERATOR_COLS} FROM operators WHERE name=?",
                          (name,)).fetchone()
            return None if r is None else _operator(r)
        return await self._db.read(fn)

    async def list(self) -> list[OperatorRow]:
        def fn(c: sqlite3.Connection) -> list[OperatorRow]:
            return [_operator(r) for r in c.execute(
                f"SELECT {_OPERATOR_COLS} FROM operators ORDER BY name")]
        return await self._db.read(fn)

    async def remove(self, name: str) -> None:
        """Delete the operator and every token it holds. Raises NotFound."""
        def fn(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM operator_tokens WHERE name=?", (name,))
            if c.execute("DELETE FROM operators WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"no operator {name}")
        await self._db.write(fn)

    async def set_password(self, name: str, password: str) -> None:
        """Replace the password hash and end every token. Raises NotFound."""
        def fn(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE operators SET password=? WHERE name=?",
                         (password, name)).rowcount == 0:
                raise NotFound(f"no operator {name}")
            c.execute("DELETE FROM operator_tokens WHERE name=?", (name,))
        await self._db.write(fn)

    async def add_token(self, row: TokenRow) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO operator_tokens VALUES (?,?,?,?)",
                      (row.digest, row.name, row.created.isoformat(),
                       row.expires.isoformat()))
        await self._db.write(fn)

    async def get_token(self, digest: bytes) -> TokenRow | None:
        def fn(c: sqlite3.Connection) -> TokenRow | None:
            r = c.execute("SELECT digest, name, created, expires FROM operator_tokens "
                          "WHERE digest=?", (digest,)).fetchone()
            if r is None:
                return None
            return TokenRow(bytes(r[0]), str(r[1]), datetime.fromisoformat(r[2]),
                            datetime.fromisoformat(r[3]))
        return await self._db.read(fn)

    async def delete_token(self, digest: bytes) -> None:
        """Raises NotFound if no such token exists."""
        def fn(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM operator_tokens WHERE digest=?",
                         (digest,)).rowcount == 0:
                raise NotFound("no such token")
        await self._db.write(fn)

    async def purge_tokens(self, now: datetime) -> int:
        """Forget expired tokens; returns how many."""
        def fn(c: sqlite3.Connection) -> int:
            return int(c.execute("DELETE FROM operator_tokens WHERE expires <= ?",
                                 (now.isoformat(),)).rowcount)
        return await self._db.write(fn)
