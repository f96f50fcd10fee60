"""Each account's filter scripts (Sieve, RFC 5228), as ManageSieve (RFC 5804) and the
web pages manage them.

A script is private like mail. The owner's copy is sealed to the account key, so only
a session of the owner opens it (GETSCRIPT, the privacy center). Delivery happens when
no user key is at hand, so the ACTIVE script alone also has a delivery copy, sealed
under a key derived from the server key (``control/server.key``): while a script is
active the server can read it, and through it what it tests; deactivate it and that
copy is gone. The privacy center says exactly this (http/account_pages.py).

Scripts count toward the account's storage quota, within their own limits
(``sieve.max_script_bytes``, ``sieve.max_account_bytes``, ``sieve.max_scripts``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from letterlock import sieve
from letterlock.crypto import seal
from letterlock.errors import InvalidInput, NotFound, QuotaExceeded, Refused
from letterlock.services.accounts.accounts import AccountRef, Session
from letterlock.services.accounts.quotas import QuotaService
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.sieve_contracts import SieveRecord, SieveStore

MAX_NAME_CHARS = 128
DELIVERY_PURPOSE = b"letterlock sieve delivery copy v1"
VACATION_PURPOSE = b"letterlock sieve vacation memory v1"


class ScriptInvalid(InvalidInput):
    """A script that does not parse; ``str()`` is ``line N: message``."""


class ScriptActive(Refused):
    """The active script may not be deleted (RFC 5804 2.10: NO (ACTIVE))."""


@dataclass(frozen=True)
class FilterLimits:
    max_script_bytes: int = 64 * 1024
    max_account_bytes: int = 1024 * 1024
    max_scripts: int = 32
    max_redirects: int = 4


@dataclass(frozen=True)
class ScriptInfo:
    name: str
    active: bool
    size: int


def check_name(name: str) -> str:
    """RFC 5804 1.6: a script name is non-empty UTF-8 without control characters
    (we also refuse ``/`` and leading dots, as Pigeonhole's file store does)."""
    if not name or len(name) > MAX_NAME_CHARS or name.startswith(".") or "/" in name \
            or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029"
                   for c in name):
        raise InvalidInput(f"invalid script name {name[:40]!r}")
    return name


def derived_key(server_key: bytes, purpose: bytes) -> bytes:
    return hmac.new(server_key, purpose, hashlib.sha256).digest()


class FilterService:
    def __init__(self, open_store: Callable[[str], SieveStore], server_key: bytes, *,
                 limits: FilterLimits = FilterLimits(),
                 quotas: QuotaService | None = None) -> None:
        self._open_store = open_store
        self._stores: dict[str, SieveStore] = {}
        self._delivery_key = derived_key(server_key, DELIVERY_PURPOSE)
        self.vacation_key = derived_key(server_key, VACATION_PURPOSE)
        self.limits = limits
        self._quotas = quotas

    def store(self, region: str) -> SieveStore:
        if region not in self._stores:
            self._stores[region] = self._open_store(region)
        return self._stores[region]

    async def close(self) -> None:
        for store in self._stores.values():
            await store.close()
        self._stores.clear()

    # -- the delivery copy -------------------------------------------------------

    def _seal_for_delivery(self, ref: AccountRef, text: bytes) -> bytes:
        return seal.seal_box(self._delivery_key, text, ref.address.encode())

    def open_delivery_copy(self, ref: AccountRef, record: SieveRecord) -> str:
        """The active script's text from its delivery copy (CryptoError if it does not
        open: changed, or sealed under another server key)."""
        if record.delivery is None:
            raise NotFound(f"script {record.name} has no delivery copy")
        return seal.open_box(self._delivery_key, record.delivery,
                             ref.address.encode()).decode("utf-8")

    # -- management (ManageSieve, web) ------------------------------------------

    async def list(self, ref: AccountRef) -> list[ScriptInfo]:
        return [ScriptInfo(r.name, r.active, r.size)
                for r in await self.store(ref.region).list(ref.address)]

    async def get(self, session: Session, name: str) -> str:
        record = await self.store(session.ref.region).get(session.address, name)
        if record is None:
            raise NotFound(f"no script {name}")
        return session.opener.open(record.sealed).decode("utf-8")

    @staticmethod
    def check(text: str) -> sieve.Script:
        """Parse ``text``; raises ScriptInvalid with the line of the first error."""
        try:
            return sieve.parse(text)
        except sieve.SieveSyntaxError as exc:
            raise ScriptInvalid(str(exc)) from exc

    async def have_space(self, ref: AccountRef, name: str, size: int) -> None:
        """Raise QuotaExceeded (``.maxsize`` when the script alone is too big) unless
        a script ``name`` of ``size`` octets could be stored (RFC 5804 2.3)."""
        if size > self.limits.max_script_bytes:
            raise ScriptTooBig(f"scripts are limited to {self.limits.max_script_bytes} "
                               "bytes")
        scripts = await self.store(ref.region).list(ref.address)
        others = [r for r in scripts if r.name != name]
        if len(others) + 1 > self.limits.max_scripts:
            raise QuotaExceeded(f"at most {self.limits.max_scripts} scripts")
        total = sum(r.size for r in others) + size
        if total > self.limits.max_account_bytes:
            raise QuotaExceeded(f"scripts may take at most {self.limits.max_account_bytes} "
                                "bytes in all")
        if self._quotas is not None:
            quota = await self._quotas.limits(ref.address)
            if quota.storage is not None:
                # Usage counts the scripts stored now (stored_bytes): count the new set.
                usage = await self._quotas.usage(ref, fresh=True)
                if usage.storage - sum(r.size for r in scripts) + total > quota.storage:
                    raise QuotaExceeded(f"{ref.address} is over its storage quota")

    async def stored_bytes(self, ref: AccountRef) -> int:
        """Bytes of the account's scripts: part of its storage usage (the quota
        service asks, see app.py)."""
        return sum(r.size for r in await self.store(ref.region).list(ref.address))

    def _changed(self, ref: AccountRef) -> None:
        if self._quotas is not None:
            self._quotas.forget(ref)  # usage is read afresh, scripts included

    async def put(self, session: Session, name: str, text: str, *,
                  via: str = "managesieve") -> None:
        """Store script ``name`` (replacing one of that name) after checking it parses
        and fits; if it is the active script its delivery copy is replaced too."""
        ref = session.ref
        check_name(name)
        raw = text.encode("utf-8")
        await self.have_space(ref, name, len(raw))
        self.check(text)
        sealed = seal.seal(raw, ref.record.public_key, ref.record.key_id)
        await self.store(ref.region).put(ref.address, name, sealed, len(raw),
                                         self._seal_for_delivery(ref, raw))
        self._changed(ref)
        event(LogEvent.FILTER_CHANGED, account=ref.address, change="stored", via=via)

    async def rename(self, session: Session, old: str, new: str, *,
                     via: str = "managesieve") -> None:
        check_name(new)
        ref = session.ref
        record = await self.store(ref.region).get(ref.address, old)
        await self.store(ref.region).rename(ref.address, old, new)
        event(LogEvent.FILTER_CHANGED, account=ref.address, change="renamed", via=via)
        if record is not None and record.active:  # the delivery copy is bound to it
            await self.activate(session, new, via=via)

    async def delete(self, session: Session, name: str, *, via: str = "managesieve") -> None:
        ref = session.ref
        record = await self.store(ref.region).get(ref.address, name)
        if record is None:
            raise NotFound(f"no script {name}")
        if record.active:
            raise ScriptActive("the active script cannot be deleted; deactivate it first")
        await self.store(ref.region).delete(ref.address, name)
        self._changed(ref)
        event(LogEvent.FILTER_CHANGED, account=ref.address, change="deleted", via=via)

    async def activate(self, session: Session, name: str | None, *,
                       via: str = "managesieve") -> None:
        """Make ``name`` the active script (None: none), making its delivery copy
        from the owner's copy; every other delivery copy is dropped."""
        ref = session.ref
        store = self.store(ref.region)
        if name is None:
            await store.activate(ref.address, None, None)
            event(LogEvent.FILTER_CHANGED, account=ref.address, change="deactivated",
                  via=via)
            return
        record = await store.get(ref.address, name)
        if record is None:
            raise NotFound(f"no script {name}")
        raw = session.opener.open(record.sealed)
        await store.activate(ref.address, name, self._seal_for_delivery(ref, raw))
        event(LogEvent.FILTER_CHANGED, account=ref.address, change="activated", via=via)

    async def active_script(self, session: Session) -> tuple[str, sieve.Script] | None:
        """The active script's name and parsed form, read from the owner's copy (for
        the privacy center), or None."""
        record = await self.store(session.ref.region).active(session.address)
        if record is None:
            return None
        return record.name, self.check(session.opener.open(record.sealed).decode("utf-8"))

    # -- account life (AccountService address hooks) -----------------------------

    async def address_taken(self, address: str) -> bool:
        return False

    async def account_deleted(self, address: str, region: str) -> None:
        await self.store(region).delete_account(address)

    async def account_moved(self, address: str, src: str, dst: str) -> None:
        """Scripts and options follow the account (sealed copies stay sealed: same key
        pair); the vacation memory starts afresh in the new region."""
        for record in await self.store(src).list(address):
            await self.store(dst).put(address, record.name, record.sealed, record.size,
                                      None)
            if record.active:
                await self.store(dst).activate(address, record.name, record.delivery)
        for name, value in (await self.store(src).options(address)).items():
            await self.store(dst).set_option(address, name, value)
        await self.store(src).delete_account(address)


class ScriptTooBig(QuotaExceeded):
    """One script over ``sieve.max_script_bytes`` (RFC 5804 QUOTA/MAXSIZE)."""
