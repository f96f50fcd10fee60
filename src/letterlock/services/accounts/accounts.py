"""Accounts: creation in a chosen region, authentication (unlocking the account key
into a session), password change and recovery, deletion and moving to another region.

Password derivations (Argon2id) run in the fair, bounded queue of kdf_queue.py. A
client that logs in again soon is served from the key cache (key_cache.py) without
Argon2id; the cache is checked against the account record read fresh from its cell
at every login, and dropped here when the record changes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.crypto import keys, openpgp
from letterlock.crypto.seal import Opener
from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Busy,
    InvalidInput,
    Refused,
    UnknownAccount,
    UnknownDomain,
)
from letterlock.services.accounts.addresses import domain_of, normalise_address
from letterlock.services.accounts.disabled import DisabledAccounts
from letterlock.services.accounts.kdf_queue import LOCAL, KdfRunner, client_key
from letterlock.services.accounts.key_cache import KeyCache, KeyCacheSettings, binding_of
from letterlock.services.accounts.login_backoff import LoginBackoff
from letterlock.services.cells import Cell, Cells
from letterlock.services.operations import log_events
from letterlock.services.operations.log_events import LogEvent
from letterlock.storage.contracts import ControlStore
from letterlock.storage.models import AccountRecord, NewMessage

__all__ = ["AccountInfo", "AccountRef", "AccountService", "KdfRunner", "Session"]

DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
MIN_PASSWORD_LENGTH = 8
MOVE_BATCH_BYTES = 32 * 1024 * 1024
"""Sealed bytes read from the old cell before they are written to the new one."""
MOVE_SETTLE_S = 2.0
"""Seconds a move waits after pointing the directory at the new region before its last
copy pass: a delivery that looked up the old region just before the switch has that
long to land there (and be copied) before the old cell's data is deleted."""

DELIVERY_CACHE_TTL_S = 1.0
"""Seconds delivery may reuse an address's resolved home region and public record
(:meth:`AccountService.resolve_for_delivery`). Changes made by this process drop the
entry at once; the TTL bounds how long a change made by another process (a `user
move` or `user delete` from the command line) goes unseen, and a move waits it out."""
DELIVERY_CACHE_MAX = 10_000

MAX_JOINED_LOGINS = 1024
"""Logins of one account from one client that may wait for the full login already
running (waiting costs no derivation: they try the key cache when it ends). A mail
program or a test tool opening dozens of connections at once must not be refused; the
bound only caps the waiters' memory. Derivations themselves are bounded per client
by the KDF queue."""

LifecycleGuard = Callable[[str], Awaitable[None]]
"""``guard(address)`` raises (e.g. MatterOpen) if the account may not be deleted or
moved now. The legal service registers one; accounts does not import it."""


class AddressHooks(Protocol):
    """What the address service (aliases, groups: services/mail/addresses.py) needs
    to hear of an account's life; registered with add_address_hooks."""

    async def address_taken(self, address: str) -> bool:
        """Whether ``address`` is an alias or group, so no account may take it."""
        ...

    async def account_deleted(self, address: str, region: str) -> None:
        ...

    async def account_moved(self, address: str, src: str, dst: str) -> None:
        ...


@dataclass(frozen=True)
class AccountRef:
    """What delivery needs: where the account lives and its public key. No secrets."""

    record: AccountRecord
    region: str

    @property
    def address(self) -> str:
        return self.record.address


@dataclass(frozen=True)
class Session:
    """An authenticated owner: the account key unlocked for this session only."""

    ref: AccountRef
    opener: Opener

    @property
    def address(self) -> str:
        return self.ref.address


@dataclass(frozen=True)
class AccountInfo:
    address: str
    region: str
    created: datetime
    custody: str = "sealed"
    """``sealed`` or ``e2e`` (end-to-end mode)."""


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


class AccountService:
    def __init__(self, control: ControlStore, cells: Cells, kdf: KdfRunner,
                 kdf_params: keys.KdfParams, audit: AuditSink, *,
                 key_cache: KeyCache | None = None,
                 backoff: LoginBackoff | None = None) -> None:
        self._control = control
        self._cells = cells
        self._kdf = kdf
        self._params = kdf_params
        self._audit = audit
        self._keys = key_cache if key_cache is not None else KeyCache(KeyCacheSettings(ttl_s=0))
        self._backoff = backoff if backoff is not None else LoginBackoff(0)
        self._full_logins: dict[tuple[str, str], asyncio.Event] = {}
        """(address, client key) -> set when that client's full login ends."""
        self._joined: dict[tuple[str, str], int] = {}
        """(address, client key) -> logins waiting for it."""
        self._guards: list[LifecycleGuard] = []
        self._disabled: DisabledAccounts | None = None
        self._address_hooks: list[AddressHooks] = []
        self._resolved: dict[str, tuple[AccountRef, float]] = {}
        """address -> (ref, monotonic expiry) for delivery."""
        self._generation = 0
        """Bumped whenever an entry is dropped, so a lookup that raced the change
        does not put the old answer back."""

    def add_lifecycle_guard(self, guard: LifecycleGuard) -> None:
        """Register a check that runs before an account is deleted or moved."""
        self._guards.append(guard)

    def use_disabled_list(self, disabled: DisabledAccounts) -> None:
        """Refuse the logins of the accounts on this list (see ``disabled``)."""
        self._disabled = disabled

    def is_disabled(self, address: str) -> bool:
        """Blocking (one stat): call it off the event loop or rarely."""
        return self._disabled is not None and self._disabled.refuses(address)

    async def set_disabled(self, address: str, disabled: bool, *,
                           actor: str = "operator") -> None:
        """Refuse (or allow again) the account's logins; its mail keeps arriving.
        Raises UnknownAccount, or Refused when it already is so."""
        if self._disabled is None:
            raise Refused("this server keeps no list of disabled accounts")
        ref = await self.resolve(address)
        if not await asyncio.to_thread(self._disabled.set, ref.address, disabled, actor):
            raise Refused(f"{ref.address} is already {'disabled' if disabled else 'enabled'}")
        self._drop_key(ref.address)
        kind = EventType.ADMIN_ACCOUNT_DISABLED if disabled else EventType.ADMIN_ACCOUNT_ENABLED
        await self._audit.record(AuditEvent(kind, actor, datetime.now(UTC),
                                            account=ref.address))

    def add_address_hooks(self, hooks: AddressHooks) -> None:
        """Tell ``hooks`` of accounts deleted and moved; ask it before creating one."""
        self._address_hooks.append(hooks)

    async def _check_free(self, address: str) -> None:
        for guard in self._guards:
            await guard(address)

    async def _home(self, address: str) -> tuple[Cell, AccountRecord]:
        region = await self._control.lookup(address)
        if region is None:
            raise UnknownAccount(f"no account {address}")
        cell = self._cells.get(region)
        record = await cell.store.get_account(address)
        if record is None:
            raise UnknownAccount(f"no account {address} in region {region}")
        return cell, record

    async def resolve(self, address: str) -> AccountRef:
        """The account's home region and public record. Raises UnknownAccount."""
        try:
            address = normalise_address(address)
        except InvalidInput:
            raise UnknownAccount(f"no account {address}") from None
        cell, record = await self._home(address)
        return AccountRef(record, cell.region.id)

    async def resolve_for_delivery(self, address: str) -> AccountRef:
        """:meth:`resolve` for the delivery path, which asks about the same few
        addresses thousands of times a second: answers are reused for up to
        DELIVERY_CACHE_TTL_S. Unknown addresses are never cached (a new account is
        seen at once). ``address`` must be normalised. Raises UnknownAccount."""
        now = time.monotonic()
        hit = self._resolved.get(address)
        if hit is not None and hit[1] > now:
            return hit[0]
        generation = self._generation
        ref = await self.resolve(address)
        if generation == self._generation:
            if len(self._resolved) >= DELIVERY_CACHE_MAX:
                self._resolved.clear()
            self._resolved[address] = (ref, now + DELIVERY_CACHE_TTL_S)
        return ref

    def _forget(self, address: str) -> None:
        self._generation += 1
        self._resolved.pop(address, None)

    async def create(self, address: str, region_id: str, password: str, *,
                     actor: str = "operator") -> tuple[AccountRef, str]:
        """Create an account in ``region_id`` with the default mailboxes.

        Returns the account and its recovery code (shown once, never stored).
        Everything about the account, keys included, is written only in its cell.
        """
        address = normalise_address(address)
        check_password(password)
        cell = self._cells.get(region_id)
        domains = {d.name for d in await self._control.list_domains()}
        if domain_of(address) not in domains:
            raise UnknownDomain(f"domain {domain_of(address)} is not hosted here")
        if await self._control.lookup(address) is not None:
            raise AlreadyExists(f"{address} exists")
        for hooks in self._address_hooks:
            if await hooks.address_taken(address):
                raise AlreadyExists(f"{address} is an alias or group address")
        pair = keys.KeyPair.generate()
        code = keys.new_recovery_code()
        wrapped_pw = await self._kdf.run(
            lambda: keys.wrap_with_password(pair, password, self._params))
        record = AccountRecord(
            id=uuid.uuid4().hex, address=address, created=datetime.now(UTC),
            public_key=pair.public, key_id=pair.key_id, wrapped_by_password=wrapped_pw,
            wrapped_by_recovery=keys.wrap_with_recovery_code(pair, code))
        # Directory entry first: a crash between the two leaves a dangling pointer
        # that `create` refuses and an operator can remove, never an unlisted account.
        await self._control.assign(address, region_id)
        await cell.store.create_account(record)
        for name, special in DEFAULT_MAILBOXES:
            await cell.store.create_mailbox(record.id, name, special, True)
        await self._audit.record(AuditEvent(EventType.ADMIN_ACCOUNT_CREATED, actor,
                                            datetime.now(UTC), account=address,
                                            details=(("region", region_id),)))
        return AccountRef(record, region_id), code

    async def authenticate(self, address: str, password: str, *,
                           client: str = LOCAL) -> Session:
        """Unlock the account key. ``client`` is the peer's address: password checks
        are queued fairly across clients. Raises AuthenticationFailed for an unknown
        account or a wrong password alike (after the same work, so timing tells
        nothing), or Busy when this client has too many checks waiting.

        A login soon after a full one is served from the key cache: the entry must
        match the record read now, and open with this password.

        Each outcome is one log line (the protocol and mechanism come from the
        front-end's bound log fields), never with the password."""
        try:
            session = await self._authenticate(address, password, client)
        except (AuthenticationFailed, InvalidInput):  # a name that is no address too
            log_events.event(LogEvent.LOGIN_FAILED, ip=client, user=address)
            if client != LOCAL:
                self._backoff.failed(client, address)
            raise
        except Busy:
            log_events.event(LogEvent.CLIENT_REFUSED, ip=client, limit="password-checks",
                             user=address)
            raise
        log_events.event(LogEvent.LOGIN_OK, ip=client, user=session.ref.address)
        if client != LOCAL:
            self._backoff.succeeded(client, address)
        return session

    async def _back_off(self, address: str, client: str) -> None:
        """Before a full password check: wait if this client or account has been
        failing (services/accounts/login_backoff.py)."""
        if client == LOCAL:
            return
        delay = self._backoff.delay_for(client, address)
        if delay > 0:
            log_events.event(LogEvent.LOGIN_DELAYED, ip=client, user=address,
                             delay_ms=round(delay * 1000))
            await self._backoff.wait(client, address)

    async def _authenticate(self, address: str, password: str, client: str) -> Session:
        try:
            ref = await self.resolve(address)
        except UnknownAccount:
            await self._keys.miss(password)
            await self._back_off(address, client)
            await self._kdf.run(lambda: keys.wrap_with_password(
                keys.KeyPair.generate(), password, self._params), client=client)
            raise AuthenticationFailed("authentication failed") from None
        binding = binding_of(ref.region, ref.record)
        seen = self._keys.current(ref.address)
        pair = await self._keys.unlock(ref.address, binding, password, ref.record.key_id)
        if pair is None:
            await self._back_off(address, client)
            pair = await self._full_login(ref, binding, password, client, seen)
        if self._disabled is not None and self._disabled.refuses(ref.address):
            raise AuthenticationFailed("account disabled")
        return Session(ref, Opener(pair.private, pair.key_id))

    async def _full_login(self, ref: AccountRef, binding: bytes, password: str,
                          client: str, seen: object) -> keys.KeyPair:
        """Argon2id, then a key cache entry. Logins of one account from one client
        (a mail program opening five connections, a phone reconnecting) wait for the
        one already running and then try the cache, instead of each queueing an
        Argon2id of their own. Other clients never wait on this client's attempts.
        ``seen``: the cache entry (marker) the caller's cache attempt found."""
        record = ref.record
        slot = (ref.address, client_key(client))
        while self._keys.enabled:
            running = self._full_logins.get(slot)
            if running is not None:
                joined = self._joined.get(slot, 0)
                if joined >= MAX_JOINED_LOGINS:
                    raise Busy("too many logins waiting for this client")
                self._joined[slot] = joined + 1
                try:
                    await running.wait()
                finally:
                    self._joined[slot] -= 1
                    if not self._joined[slot]:
                        del self._joined[slot]
            elif self._keys.current(ref.address) is seen:
                break  # nothing new to try
            # A login finished (here, or one that ended while we tried the cache).
            seen = self._keys.current(ref.address)
            pair = await self._keys.unlock(ref.address, binding, password, record.key_id)
            if pair is not None:
                return pair
        done = self._full_logins[slot] = asyncio.Event()
        try:
            try:
                pair = await self._kdf.run(lambda: keys.unwrap_with_password(
                    record.wrapped_by_password, password, record.key_id), client=client)
            except AuthenticationFailed:
                raise AuthenticationFailed("authentication failed") from None
            await self._keys.store(ref.address, binding, password, pair)
            return pair
        finally:
            done.set()
            if self._full_logins.get(slot) is done:
                del self._full_logins[slot]

    def _drop_key(self, address: str) -> None:
        """The record changed (or is gone): no cached key of it may serve a login.
        Entries elsewhere cannot match the new record either; this also frees memory."""
        self._keys.drop(address)

    async def change_password(self, address: str, old: str, new: str, *,
                              client: str = LOCAL) -> None:
        check_password(new)
        session = await self.authenticate(address, old, client=client)
        await self._set_password(session.ref, session.opener, new, client)
        await self._audit.record(AuditEvent(EventType.ACCOUNT_PASSWORD_CHANGED, address,
                                            datetime.now(UTC), account=session.address))

    async def recover(self, address: str, code: str, new_password: str, *,
                      actor: str | None = None) -> None:
        """Set a new password using the recovery code (``actor``: the operator who
        typed it in for the owner; else the owner). Raises AuthenticationFailed, or
        InvalidInput for a code that cannot be one (whether or not the account exists)."""
        check_password(new_password)
        keys.normalise_recovery_code(code)
        try:
            ref = await self.resolve(address)
        except UnknownAccount:
            raise AuthenticationFailed("authentication failed") from None
        record = ref.record
        try:
            pair = keys.unwrap_with_recovery_code(record.wrapped_by_recovery, code,
                                                  record.key_id)
        except AuthenticationFailed:
            raise AuthenticationFailed("wrong recovery code") from None
        await self._set_password(ref, Opener(pair.private, pair.key_id), new_password, LOCAL)
        await self._audit.record(AuditEvent(EventType.ACCOUNT_KEY_RECOVERED,
                                            actor or address, datetime.now(UTC),
                                            account=ref.address))

    async def set_end_to_end(self, address: str, password: str,
                             certificate: bytes | None, *,
                             client: str = LOCAL) -> AccountRef:
        """Switch end-to-end mode on (mail delivered from now on is encrypted to the
        owner's OpenPGP ``certificate``, see crypto/openpgp.py) or off (``None``:
        mail is sealed to the account key only, as by default). Needs the owner's
        password: it is the owner's choice. Mail already stored stays as it is.
        Raises AuthenticationFailed, or InvalidInput for an unusable certificate."""
        cert = None if certificate is None else openpgp.load_certificate(certificate)
        session = await self.authenticate(address, password, client=client)
        ref = session.ref
        custody, armored = ("sealed", b"") if cert is None else ("e2e", cert.armored)
        await self._cells.get(ref.region).store.set_custody(ref.address, custody, armored)
        self._forget(ref.address)
        self._drop_key(ref.address)
        await self._audit.record(AuditEvent(EventType.ACCOUNT_CUSTODY_CHANGED, ref.address,
                                            datetime.now(UTC), account=ref.address,
                                            details=(("custody", custody),)))
        return await self.resolve(ref.address)

    async def _set_password(self, ref: AccountRef, opener: Opener, password: str,
                            client: str) -> None:
        pair = keys.KeyPair(opener.private_key, ref.record.public_key)
        wrapped = await self._kdf.run(
            lambda: keys.wrap_with_password(pair, password, self._params), client=client)
        cell = self._cells.get(ref.region)
        await cell.store.update_account_keys(ref.address, wrapped,
                                             ref.record.wrapped_by_recovery)
        self._drop_key(ref.address)

    async def first_account(self, domain: str | None = None) -> str | None:
        """The address of the earliest-made account (of ``domain``, when given), or
        None when there is none: who takes a domain's postmaster@ and abuse@ mail by
        default. One query per region."""
        oldest: tuple[datetime, str] | None = None
        for cell in self._cells:
            for record in await cell.store.list_accounts():
                if domain is not None and domain_of(record.address) != domain:
                    continue
                if oldest is None or (record.created, record.address) < oldest:
                    oldest = (record.created, record.address)
        return None if oldest is None else oldest[1]

    async def list(self) -> list[AccountInfo]:
        out: list[AccountInfo] = []
        for address, region in await self._control.list_assignments():
            record = await self._cells.get(region).store.get_account(address)
            if record is not None:
                out.append(AccountInfo(address, region, record.created, record.custody))
        return out

    # -- deleting and moving --------------------------------------------------------------

    async def delete(self, address: str, *, actor: str = "operator") -> None:
        """Delete the account with all its mail: metadata rows first, then the sealed
        blobs (their bytes are overwritten, see FileBlobStore), then the directory
        entry, so an interrupted delete leaves a directory entry that a second delete
        finishes, never unlisted account data. Raises UnknownAccount, or MatterOpen
        (from a lifecycle guard) while a legal matter names the account."""
        address = normalise_address(address)
        region = await self._control.lookup(address)
        if region is None:
            raise UnknownAccount(f"no account {address}")
        await self._check_free(address)
        self._forget(address)
        self._drop_key(address)
        for cell in self._cells:
            await _purge(cell, address)
        await self._control.unassign(address)
        self._forget(address)
        if self._disabled is not None:  # an account made again later starts enabled
            await asyncio.to_thread(self._disabled.set, address, False, actor)
        self._drop_key(address)
        for hooks in self._address_hooks:
            await hooks.account_deleted(address, region)
        await self._audit.record(AuditEvent(EventType.ADMIN_ACCOUNT_DELETED, actor,
                                            datetime.now(UTC), account=address,
                                            details=(("region", region),)))

    async def move(self, address: str, region_id: str, *, actor: str = "operator",
                   settle_s: float = MOVE_SETTLE_S) -> AccountRef:
        """Move the account to ``region_id``: every mailbox, message (sealed blob and
        sealed summary, copied as ciphertext: no key is needed) and the account record
        are written in the new cell, the directory is pointed there, mail that arrived
        meanwhile is copied too, and then everything is deleted from the old cell.

        Mailboxes get new UIDVALIDITY values in the new cell (clients resynchronise).
        Flag changes and expunges made through sessions opened before the move, while
        it runs, are not carried over; such sessions fail once the old copy is gone.
        Moving an account to the region it already lives in finishes an interrupted
        move (removes stale copies elsewhere) or raises Refused if there is none.
        Raises UnknownAccount, UnknownRegion, or MatterOpen from a lifecycle guard.
        """
        address = normalise_address(address)
        src, record = await self._home(address)
        dst = self._cells.get(region_id)
        await self._check_free(address)
        if src.region.id == region_id:
            stale = [c for c in self._cells if c.region.id != region_id
                     and await c.store.get_account(address) is not None]
            if not stale:
                raise Refused(f"{address} already lives in region {region_id}")
            for cell in stale:
                await _purge(cell, address)
            return AccountRef(record, region_id)
        # A copy left in the target by an earlier, interrupted move is not trusted.
        await _purge(dst, address)
        await dst.store.create_account(record)
        copied: dict[str, int] = {}  # mailbox name -> highest UID copied
        blob_map: dict[str, str] = {}
        count = await _copy_mail(src, dst, record.id, copied, blob_map)
        await self._control.reassign(address, region_id)
        self._forget(address)
        self._drop_key(address)
        # Deliveries that resolved the old region before the switch (in another
        # process, up to DELIVERY_CACHE_TTL_S after it): let them land, then copy
        # them too.
        await asyncio.sleep(settle_s + DELIVERY_CACHE_TTL_S)
        count += await _copy_mail(src, dst, record.id, copied, blob_map)
        # Subscriptions to names that are not mailboxes travel too (RFC 9051 6.3.7).
        for name in await src.store.list_subscriptions(record.id):
            await dst.store.subscribe(record.id, name, True)
        await _purge(src, address)
        self._forget(address)
        self._drop_key(address)
        for hooks in self._address_hooks:
            await hooks.account_moved(address, src.region.id, region_id)
        await self._audit.record(AuditEvent(EventType.ADMIN_ACCOUNT_MOVED, actor,
                                            datetime.now(UTC), account=address,
                                            details=(("from", src.region.id),
                                                     ("to", region_id),
                                                     ("messages", str(count)))))
        return AccountRef(record, region_id)


async def _purge(cell: Cell, address: str) -> None:
    """Remove the account and its mail from ``cell`` if it is there."""
    try:
        orphans = await cell.store.delete_account(address)
    except UnknownAccount:
        return
    await cell.blobs.delete_many(orphans)


async def _copy_mail(src: Cell, dst: Cell, account_id: str, copied: dict[str, int],
                     blob_map: dict[str, str]) -> int:
    """Copy messages not copied yet (UID above ``copied[mailbox]``), preserving
    flags, dates and blob sharing. Returns how many were copied."""
    count = 0
    dst_boxes = {b.name: b for b in await dst.store.list_mailboxes(account_id)}
    for box in await src.store.list_mailboxes(account_id):
        target = dst_boxes.get(box.name)
        if target is None:
            target = await dst.store.create_mailbox(account_id, box.name, box.special_use,
                                                    box.subscribed)
        last = copied.get(box.name, 0)
        pending = [m for m in await src.store.list_messages(box.id) if m.uid > last]
        start = 0
        while start < len(pending):
            end, size = start, 0
            while end < len(pending) and (end == start or size < MOVE_BATCH_BYTES):
                size += pending[end].size
                end += 1
            batch = pending[start:end]
            fresh = list(dict.fromkeys(m.blob_id for m in batch if m.blob_id not in blob_map))
            if fresh:
                datas = await src.blobs.get_many(fresh)
                new_ids = await dst.blobs.put_many([datas[b] for b in fresh])
                blob_map.update(zip(fresh, new_ids, strict=True))
            await dst.store.append_messages([
                NewMessage(target.id, blob_map[m.blob_id], m.size, m.internaldate, m.flags,
                           m.summary) for m in batch])
            copied[box.name] = batch[-1].uid
            count += len(batch)
            start = end
    return count
