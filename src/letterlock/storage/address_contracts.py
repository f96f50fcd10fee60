"""Storage contracts for extra addresses (aliases, groups, catch-alls, domain aliases
and send-as grants), split along region pinning:

- :class:`AddressDirectory` sits beside the directory in the control store. Like the
  directory it says only *that* an address exists and *which regions* hold its
  targets, never which account it leads to; and which domain another domain stands
  for (operator configuration, about no account).
- :class:`AddressBook` is one region's half: which of *this region's* accounts an
  address leads to, and which addresses an account of this region may send as. A
  group with members in two regions has a row in each region's book, for that
  region's members only.

Implementations: SQLite (addresses_sqlite.py) and PostgreSQL (addresses_postgres.py);
tests/storage/test_address_contracts.py runs both against these contracts.
"""

from __future__ import annotations

import enum
from typing import Protocol


class AddressKind(enum.StrEnum):
    ALIAS = "alias"
    """Another address of exactly one account."""
    GROUP = "group"
    """An address that fans out to several accounts, in any regions."""
    CATCH_ALL = "catch-all"
    """``@domain``: every address of the domain that nothing else takes."""


class AddressDirectory(Protocol):
    """Control-side: address names, the regions holding their targets, domain aliases."""

    async def add_name(self, address: str, kind: AddressKind) -> None:
        """Reserve ``address`` (normalised; ``@domain`` for a catch-all).
        Raises AlreadyExists."""
        ...

    async def remove_name(self, address: str) -> None:
        """Forget ``address`` and its routes. Raises NotFound."""
        ...

    async def get_name(self, address: str) -> AddressKind | None:
        ...

    async def list_names(self) -> list[tuple[str, AddressKind]]:
        """(address, kind) ordered by address."""
        ...

    async def set_route(self, address: str, region_id: str, on: bool) -> None:
        """Record (``on``) or forget that ``region_id`` holds targets of ``address``.
        Idempotent."""
        ...

    async def routes(self, address: str) -> list[str]:
        """Region ids holding targets of ``address``, ordered; [] if none (the hot
        path of RCPT: one indexed read)."""
        ...

    async def add_domain_alias(self, alias: str, target: str) -> None:
        """``alias`` (a domain) stands for the hosted domain ``target``.
        Raises AlreadyExists."""
        ...

    async def remove_domain_alias(self, alias: str) -> None:
        """Raises NotFound."""
        ...

    async def domain_alias_target(self, alias: str) -> str | None:
        ...

    async def list_domain_aliases(self) -> list[tuple[str, str]]:
        """(alias, target) ordered by alias."""
        ...

    async def close(self) -> None:
        ...


class AddressBook(Protocol):
    """One region's half: address -> this region's accounts; send-as grants of this
    region's accounts. Every method is atomic and durable on return."""

    async def add_target(self, address: str, account: str, kind: AddressKind) -> None:
        """``address`` leads to ``account`` (an account of this region).
        Raises AlreadyExists when it already does."""
        ...

    async def remove_target(self, address: str, account: str) -> bool:
        """Returns whether there was such a row."""
        ...

    async def targets(self, address: str) -> list[str]:
        """This region's accounts ``address`` leads to, ordered."""
        ...

    async def addresses_of(self, account: str) -> list[tuple[str, AddressKind]]:
        """(address, kind) leading to ``account``, ordered by address."""
        ...

    async def remove_account(self, account: str) -> list[tuple[str, AddressKind]]:
        """Drop every row about ``account`` (its targets and grants); returns the
        addresses that led to it."""
        ...

    async def set_grant(self, account: str, address: str, on: bool) -> bool:
        """Let ``account`` send as ``address`` (a full address or ``@domain``), or
        stop it; returns whether anything changed."""
        ...

    async def grants(self, account: str) -> list[str]:
        """What ``account`` was granted, ordered."""
        ...

    async def close(self) -> None:
        ...


# The tables of both SQL back-ends; only the type of the `created` columns differs.
_DIRECTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS address_names (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created {created}
);
CREATE TABLE IF NOT EXISTS address_routes (
    address TEXT NOT NULL REFERENCES address_names(address) ON DELETE CASCADE,
    region_id TEXT NOT NULL,
    PRIMARY KEY (address, region_id)
);
CREATE TABLE IF NOT EXISTS domain_aliases (
    alias TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created {created}
);
"""


def directory_schema(created: str) -> str:
    """The address directory's tables, `created` being the column type of its
    creation times in this dialect."""
    return _DIRECTORY_SCHEMA.format(created=created)


BOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS address_targets (
    address TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (address, account)
);
CREATE INDEX IF NOT EXISTS address_targets_account ON address_targets(account);
CREATE TABLE IF NOT EXISTS send_as (
    account TEXT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (account, address)
);
"""
