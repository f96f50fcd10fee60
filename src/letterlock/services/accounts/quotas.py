"""Quotas: how much mail an account may keep (bytes stored and messages), checked
before anything is stored for it (delivery, APPEND, COPY) and shown to its owner.

Limits are administrative settings like the directory, kept in the control store:
the account's own (``quota:account:ADDRESS``), else its domain's default for each of
its accounts (``quota:domain:DOMAIN``), else the server's (``quota:default``); no
setting means no limit. Usage is counted in the account's own region and nowhere
else, as what the store holds of each message: its sealed blob, that is the message
plus the seal's header and tag (:func:`stored_size`); copies of a message share one
blob, so a COPY adds a message but no bytes. Summaries and digest packs are
the server's indexes and are not counted, as Dovecot does not count its index files.

Usage is read from the region at most once per ``USAGE_TTL_S`` per account and
process, plus what this process stored since; so concurrent writers in other
processes may pass a limit by what they stored in those seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from letterlock.crypto import seal
from letterlock.errors import InvalidInput, QuotaExceeded
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.cells import Cells
from letterlock.storage.contracts import ControlStore

USAGE_TTL_S = 10.0
LIMITS_TTL_S = 30.0
PREFIX = "quota:"
DEFAULT = "default"
WARN_LEVELS = (95, 80)
"""Per cent of a limit at which the owner gets a warning mail (highest first)."""


@dataclass(frozen=True)
class Quota:
    storage: int | None = None
    """Bytes the account's sealed messages may take; None: no limit."""
    messages: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.storage is None and self.messages is None

    def encode(self) -> str:
        return f"{self.storage if self.storage is not None else ''}," \
               f"{self.messages if self.messages is not None else ''}"

    @classmethod
    def decode(cls, text: str) -> Quota:
        storage, _, messages = text.partition(",")
        return cls(int(storage) if storage else None, int(messages) if messages else None)


@dataclass(frozen=True)
class Usage:
    messages: int
    storage: int
    """Bytes of the sealed messages."""


def stored_size(size: int) -> int:
    """What a message of ``size`` bytes is counted as: the message and the seal's
    header and first tag (one more 16-byte tag per 64 KiB past the first is left
    out, as usage read from the store cannot tell chunks apart)."""
    return size + seal.HEADER_SIZE + seal.TAG


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``800000`` (bytes) -> bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in units else ""
    try:
        amount = float(value[: len(value) - len(unit)])
    except ValueError:
        raise InvalidInput(f"{text!r} is not a size (e.g. 800M, 2G)") from None
    if amount < 0 or amount != amount:
        raise InvalidInput(f"{text!r} is not a size (e.g. 800M, 2G)")
    return int(amount * units[unit])


class QuotaService:
    def __init__(self, control: ControlStore, cells: Cells) -> None:
        self._control = control
        self._cells = cells
        self._limits: dict[str, tuple[float, Quota]] = {}
        self._usage: dict[str, tuple[float, Usage]] = {}
        self._extra: list[Callable[[AccountRef], Awaitable[int]]] = []

    def add_usage_source(self, source: Callable[[AccountRef], Awaitable[int]]) -> None:
        """Count ``source(ref)`` bytes, kept outside the account's mailboxes (its
        filter scripts), toward its storage usage and limit."""
        self._extra.append(source)

    # -- limits --------------------------------------------------------------------
    @staticmethod
    def scope_key(scope: str) -> str:
        """``default``, ``@domain`` or an address -> the setting that holds it."""
        scope = scope.strip().lower()
        if scope == DEFAULT:
            return PREFIX + DEFAULT
        if scope.startswith("@"):
            return f"{PREFIX}domain:{scope[1:]}"
        if "@" not in scope:
            raise InvalidInput(f"{scope!r}: give an address, @domain or 'default'")
        return f"{PREFIX}account:{scope}"

    async def set_limits(self, scope: str, quota: Quota) -> None:
        """Set the limits of an account, a domain's accounts or the server
        (``Quota()`` removes them)."""
        for value in (quota.storage, quota.messages):
            if value is not None and value < 0:
                raise InvalidInput("a quota cannot be negative")
        await self._control.set_setting(self.scope_key(scope),
                                        "" if quota.unlimited else quota.encode())
        self._limits.clear()

    async def scope_limits(self, scope: str) -> Quota | None:
        """The limits set at exactly ``scope`` (None: none set there)."""
        text = await self._control.get_setting(self.scope_key(scope))
        return Quota.decode(text) if text else None

    async def limits(self, address: str) -> Quota:
        """What applies to ``address``: its own, else its domain's, else the
        server's (kept for LIMITS_TTL_S)."""
        now = time.monotonic()
        cached = self._limits.get(address)
        if cached is not None and now - cached[0] < LIMITS_TTL_S:
            return cached[1]
        quota = Quota()
        for scope in (address, "@" + address.rpartition("@")[2], DEFAULT):
            found = await self.scope_limits(scope)
            if found is not None:
                quota = found
                break
        self._limits[address] = (now, quota)
        return quota

    # -- usage ---------------------------------------------------------------------
    async def usage(self, ref: AccountRef, *, fresh: bool = False) -> Usage:
        now = time.monotonic()
        cached = self._usage.get(ref.record.id)
        if cached is not None and not fresh and now - cached[0] < USAGE_TTL_S:
            return cached[1]
        count, size = await self._cells.get(ref.region).store.account_usage(ref.record.id)
        for source in self._extra:
            size += await source(ref)
        usage = Usage(count, size + count * (seal.HEADER_SIZE + seal.TAG))  # stored_size
        self._usage[ref.record.id] = (now, usage)
        return usage

    async def check(self, ref: AccountRef, sizes: Sequence[int], copies: int = 0) -> None:
        """Raise QuotaExceeded if storing messages of ``sizes`` (and ``copies``
        copies of stored messages, which share their blobs: messages, no bytes)
        would pass the account's limits; otherwise count them as stored (the caller
        stores them)."""
        quota = await self.limits(ref.address)
        if quota.unlimited or not (sizes or copies):
            return
        usage = await self.usage(ref)
        count = len(sizes) + copies
        adding = sum(stored_size(s) for s in sizes)
        if quota.messages is not None and usage.messages + count > quota.messages:
            raise QuotaExceeded(f"{ref.address} is over its quota of {quota.messages} "
                                "messages")
        if quota.storage is not None and adding and usage.storage + adding > quota.storage:
            raise QuotaExceeded(f"{ref.address} is over its storage quota")
        self._usage[ref.record.id] = (self._usage[ref.record.id][0],
                                      Usage(usage.messages + count, usage.storage + adding))

    async def crossed(self, ref: AccountRef) -> int | None:
        """The warning level (80 or 95, per cent of the nearer limit) the account has
        reached since it was last told, if any; remembered so each level is told once
        until usage falls below it again."""
        quota = await self.limits(ref.address)
        if quota.unlimited:
            return None
        usage = await self.usage(ref)
        shares = [used / limit for used, limit in ((usage.storage, quota.storage),
                                                   (usage.messages, quota.messages))
                  if limit]
        share = max(shares, default=0.0)
        level = next((lv for lv in WARN_LEVELS if share * 100 >= lv), 0)
        key = f"{PREFIX}warned:{ref.address}"
        told = int(await self._control.get_setting(key) or 0)
        if level != told:
            await self._control.set_setting(key, str(level))
        return level if level > told else None

    def forget(self, ref: AccountRef) -> None:
        """Read usage afresh next time (after an expunge, say)."""
        self._usage.pop(ref.record.id, None)
