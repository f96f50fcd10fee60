"""The contract of a region's filter store (Sieve scripts, RFC 5228 / RFC 5804).

Each region keeps its accounts' scripts beside their mail. A script is stored twice at
most: ``sealed``, the owner's copy sealed to the account key (only a session opens
it), and, only while it is the active script, ``delivery``, a copy the server can
open at delivery (sealed under a key derived from the server key). Deactivating or
deleting a script drops its delivery copy.

The vacation memory (RFC 5230 4.2) is keyed by a keyed hash of (handle, sender), never
by the address itself.
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
        """Every script and the vacation memory of ``account``."""
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
