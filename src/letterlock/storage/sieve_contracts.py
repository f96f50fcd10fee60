"""The contract of a region's filter store (Sieve scripts, RFC 5228 / RFC 5804).

Each region keeps its accounts' scripts beside their mail. A script is stored twice at
most: ``sealed``, the owner's copy sealed to the account key (only a session opens
it), and, only while it is the active script, ``delivery``, a copy the server can
open at delivery (sealed under a key derived from the server key). Deactivating or
deleting a script drops its delivery copy.

The vacation memory (RFC 5230 4.2) is keyed by a keyed hash of (handle, sender), never
by the address itself.

Options are the account's filing choices that are not a script (where junk goes:
services/mail/filters/junk_filing.py): a name and a short value per account, kept in
its home region like its scripts, and read at delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SieveRecord:
    account: str
    name: str
    sealed: bytes
    size: int
    """Octets of the script's text (what counts toward the quota)."""
    active: bool
    delivery: bytes | None = None
    """The server-readable copy, present only while the script is active."""


class SieveStore(Protocol):
    """One region's scripts and vacation memory."""

    async def put(self, account: str, name: str, sealed: bytes, size: int,
                  delivery: bytes | None) -> None:
        """Store (or replace) script ``name``; ``delivery`` replaces the server copy
        only if the script is active (ignored otherwise)."""
        ...

    async def get(self, account: str, name: str) -> SieveRecord | None:
        ...

    async def list(self, account: str) -> list[SieveRecord]:
        """Every script of ``account``, by name."""
        ...

    async def rename(self, account: str, old: str, new: str) -> None:
        """Raises NotFound (no ``old``) or AlreadyExists (``new`` taken)."""
        ...

    async def delete(self, account: str, name: str) -> None:
        """Raises NotFound."""
        ...

    async def activate(self, account: str, name: str | None, delivery: bytes | None) -> None:
        """Make ``name`` the only active script with server copy ``delivery``; None
        deactivates every script (and drops every server copy). Raises NotFound."""
        ...

    async def active(self, account: str) -> SieveRecord | None:
        ...

    async def delete_account(self, account: str) -> None:
        """Every script, option and the vacation memory of ``account``."""
        ...

    async def option(self, account: str, name: str) -> str | None:
        """The value of option ``name`` of ``account``, or None (the default)."""
        ...

    async def set_option(self, account: str, name: str, value: str | None) -> None:
        """Set option ``name`` of ``account``; None: back to the default (forgotten)."""
        ...

    async def options(self, account: str) -> dict[str, str]:
        """Every option ``account`` has set (to move them with the account)."""
        ...

    async def vacation_until(self, account: str, key: bytes) -> float | None:
        """When the reply remembered under ``key`` may be sent again (epoch s)."""
        ...

    async def remember_vacation(self, account: str, key: bytes, until: float) -> None:
        """Remember a reply sent under ``key`` until ``until``; older entries of the
        account that have run out are dropped at the same time."""
        ...

    async def close(self) -> None:
        ...
