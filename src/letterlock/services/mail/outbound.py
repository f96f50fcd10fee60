"""The outbound queue: authenticated users' mail to other domains.

Durable: :meth:`OutboundQueue.submit` returns only when the message and its envelope
are on stable storage (fsync of files and directory), so submission may answer 250.
Sealed at rest: both files are sealed (:mod:`letterlock.crypto.seal`) to the operator
queue key (services/mail/queue_key.py: kept wrapped under the server key); nothing
about the message or its recipients sits in plaintext on disk. Resident: a message is
spooled in the sender's home region, ``HOME/regions/<region>/outbound/``.

Delivery: DKIM signing (dkimpy) with the sender domain's key, retries with
exponential backoff; how a message reaches a recipient domain (MX lookup with
dnspython or one configured smarthost, DANE, MTA-STS, STARTTLS) is
services/mail/outbound_routes.py; what the sender is told (a delay notice, a
bounce) is services/mail/sender_notices.py, an entry's data is
services/mail/queue_entry.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from letterlock.crypto import keys, seal
from letterlock.errors import LetterlockError, StorageError
from letterlock.services.accounts.accounts import AccountRef, AccountService
from letterlock.services.mail.dane import Dane
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.local_handoff import deliver_here
from letterlock.services.mail.mta_sts import MtaSts
from letterlock.services.mail.outbound_routes import (
    DomainRoutes,
    MxLookup,
    NoMailHost,
    dns_mx_lookup,
)
from letterlock.services.mail.outbound_session import (
    AddressLookup,
    Outcome,
    direct_address,
)
from letterlock.services.mail.outbound_settings import OutboundSettings
from letterlock.services.mail.queue_entry import (
    ENTRY_ID,
    FAILED,
    PENDING,
    SENT,
    QueueEntry,
    RecipientState,
)
from letterlock.services.mail.queue_key import load_queue_key
from letterlock.services.mail.sender_notices import SenderNotices
from letterlock.services.operations import log_events
from letterlock.services.operations.log_events import LogEvent, bind, event
from letterlock.services.peers import PeerBus
from letterlock.storage.durable import fsync_dir, write_atomically

if TYPE_CHECKING:
    from letterlock.services.operations.tls_reports import TlsResults

log = logging.getLogger("letterlock.outbound")

__all__ = ["ENTRY_ID", "FAILED", "NEWS", "PENDING", "SENT", "NoMailHost", "OutboundQueue",
           "OutboundSettings", "QueueEntry", "RecipientState", "Spool", "dns_mx_lookup",
           "load_queue_key"]
HELD_RECHECK_S = 60.0
"""Seconds between looks at a held entry's files (a release is normally told at once
over the peer bus; this bounds the wait if that news was lost)."""
NEWS = b"queue"
"""Peer bus kind: entry ids whose files the operator changed (letterlock queue)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Spool:
    """Sealed queue files of every region. Blocking: used from a worker thread."""

    def __init__(self, home: Path, key: keys.KeyPair) -> None:
        self._home = home
        self._key = key
        self._opener = seal.Opener(key.private, key.key_id)

    def _dir(self, region: str) -> Path:
        return self._home / "regions" / region / "outbound"

    def _seal(self, data: bytes) -> bytes:
        return seal.seal(data, self._key.public, self._key.key_id)

    def write_new(self, entry: QueueEntry, message: bytes) -> None:
        root = self._dir(entry.region)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Message first: an envelope never points at a missing message.
        # both files first, then one directory fsync for the pair
        write_atomically(root / f"{entry.id}.msg", self._seal(message), sync_dir=False)
        write_atomically(root / f"{entry.id}.env", self._seal(entry.to_json()))

    def write_env(self, entry: QueueEntry) -> None:
        root = self._dir(entry.region)
        write_atomically(root / f"{entry.id}.env", self._seal(entry.to_json()))

    def read_message(self, entry: QueueEntry) -> bytes:
        return self._opener.open((self._dir(entry.region) / f"{entry.id}.msg").read_bytes())

    def remove(self, entry: QueueEntry) -> None:
        root = self._dir(entry.region)
        (root / f"{entry.id}.env").unlink(missing_ok=True)
        (root / f"{entry.id}.msg").unlink(missing_ok=True)
        fsync_dir(root)

    def find(self, entry_id: str) -> QueueEntry | None:
        """The entry of that id as it is on disk now (None if it is gone)."""
        if not ENTRY_ID.fullmatch(entry_id):
            return None
        for env in self._home.glob(f"regions/*/outbound/{entry_id}.env"):
            try:
                return QueueEntry.from_json(self._opener.open(env.read_bytes()))
            except FileNotFoundError:
                return None
        return None

    def message_bytes(self, entry: QueueEntry) -> int:
        """Size of the sealed message file (the message is not opened)."""
        return (self._dir(entry.region) / f"{entry.id}.msg").stat().st_size

    def load_all(self) -> list[QueueEntry]:
        entries = []
        for env in sorted(self._home.glob("regions/*/outbound/*.env")):
            try:
                entries.append(QueueEntry.from_json(self._opener.open(env.read_bytes())))
            except (LetterlockError, ValueError, KeyError, OSError) as exc:
                log.error("unreadable queue file %s left in place: %r", env, exc)
        return entries


class OutboundQueue:
    def __init__(self, home: Path, delivery: DeliveryService, accounts: AccountService,
                 dkim: DkimKeys, settings: OutboundSettings, *,
                 mx_lookup: MxLookup = dns_mx_lookup,
                 clock: Callable[[], datetime] = _now, peers: PeerBus | None = None,
                 mta_sts: MtaSts | None = None, dane: Dane | None = None,
                 address_lookup: AddressLookup = direct_address,
                 tls_results: TlsResults | None = None) -> None:
        self._home = home
        self._peers = peers
        """Where `letterlock queue` says what it changed on disk."""
        self._delivery = delivery
        self._accounts = accounts
        self._dkim = dkim
        self.settings = settings
        self._notices = SenderNotices(delivery, accounts, hostname=settings.hostname,
                                      delay_notice_s=settings.delay_notice_s,
                                      max_age_s=settings.max_age_s, clock=clock)
        self._routes = DomainRoutes(settings, mx_lookup=mx_lookup, mta_sts=mta_sts, dane=dane,
                                    address_lookup=address_lookup, tls_results=tls_results)
        """How a message reaches each recipient domain (MX hosts, TLS policies)."""
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbound")
        self._spool: Spool | None = None
        self._entries: dict[str, QueueEntry] = {}
        self._active: set[str] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._changed = asyncio.Condition()

    async def _io(self, fn: Callable[[], object]) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def open(self) -> None:
        """Load the queue key and every queued message (after a restart)."""
        control = self._home / "control"
        key = await asyncio.get_running_loop().run_in_executor(
            self._pool, load_queue_key, control)
        self._spool = Spool(self._home, key)
        spool = self._spool
        for entry in await asyncio.get_running_loop().run_in_executor(
                self._pool, spool.load_all):
            self._entries[entry.id] = entry
        if self._peers is not None:
            self._peers.subscribe(NEWS, self._news)

    def _news(self, payload: bytes) -> None:
        for entry_id in payload.decode("ascii", "replace").split():
            if ENTRY_ID.fullmatch(entry_id):
                task = asyncio.get_running_loop().create_task(self._reload(entry_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _reload(self, entry_id: str) -> None:
        """The operator changed an entry's files (held, released, deleted): take the
        change now (an attempt under way takes it when it ends, see _attempt)."""
        assert self._spool is not None
        spool = self._spool
        found = await asyncio.get_running_loop().run_in_executor(
            self._pool, spool.find, entry_id)
        if found is None:
            event(LogEvent.OUTBOUND_DELETED, outbound=entry_id, by="operator")
        elif entry_id in self._entries:
            event(LogEvent.OUTBOUND_CHANGED, outbound=entry_id, held=found.held,
                  next=_utc(found.next_attempt), by="operator")
        # else: new, handed off by a worker (hand_off), which logged it queued
        if entry_id in self._active:
            return
        if found is None:
            self._entries.pop(entry_id, None)
        else:
            self._entries[entry_id] = found
        self._wake.set()
        async with self._changed:
            self._changed.notify_all()

    async def start(self) -> None:
        if self._spool is None:
            await self.open()
        self._runner = asyncio.create_task(self._run(), name="outbound-queue")

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pool.shutdown(wait=True)

    def poke(self) -> None:
        """Look at every entry's next attempt again now (the clock moved)."""
        self._wake.set()

    def entries(self) -> list[QueueEntry]:
        return sorted(self._entries.values(), key=lambda e: e.created)

    # -- submission ----------------------------------------------------------------
    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes, *, sign_for: str | None = None) -> str:
        """Sign and queue ``message``; returns its id once it is durable. It is
        DKIM-signed for ``sign_for``, by default the domain of ``mail_from`` (a
        message with the null sender, such as an auto-reply, names its own)."""
        assert self._spool is not None, "queue not opened"
        spool = self._spool
        domain = mail_from.rpartition("@")[2] if sign_for is None else sign_for
        now = self._clock()
        entry = QueueEntry(secrets.token_hex(12), sender.region, sender.address, mail_from,
                           now, 0, now, tuple(RecipientState(a) for a in recipients),
                           str(dict(log_events.context()).get("queue") or ""))

        def write() -> None:
            signed = self._dkim.sign(message, domain) if domain else message
            spool.write_new(entry, signed)

        try:
            await self._io(write)
        except OSError as exc:
            raise StorageError(f"queueing failed: {exc}") from exc
        self._entries[entry.id] = entry
        event(LogEvent.OUTBOUND_QUEUED, outbound=entry.id, rcpts=len(recipients),
              size=len(message))
        self._wake.set()
        return entry.id

    async def hand_off(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                       message: bytes, *, sign_for: str | None = None) -> str:
        """:meth:`submit` from a process whose queue does not run (an MX worker): the
        message is spooled durably, then the running queue (the main process) is told
        on the peer bus and sends it; if that news is lost it is sent after the next
        restart, never lost."""
        entry_id = await self.submit(sender, mail_from, recipients, message,
                                     sign_for=sign_for)
        if self._peers is not None:
            self._peers.broadcast(NEWS, entry_id.encode("ascii"))
        return entry_id

    # -- the runner ----------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            soonest: float | None = None
            for entry in list(self._entries.values()):
                if entry.id in self._active:
                    continue
                wait = (entry.next_attempt - now).total_seconds()
                if wait <= 0:
                    self._active.add(entry.id)
                    task = asyncio.create_task(self._attempt_guarded(entry.id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    soonest = wait if soonest is None else min(soonest, wait)
            timeout = min(soonest if soonest is not None else 60.0, 60.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _attempt_guarded(self, entry_id: str) -> None:
        found = self._entries.get(entry_id)
        bind(queue=found.queue_id if found is not None and found.queue_id else None,
             outbound=entry_id)  # this task's lines, and the bounce's delivery
        try:
            async with self._limit:
                await self._attempt(entry_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery attempt for %s failed unexpectedly", entry_id)
            entry = self._entries.get(entry_id)
            if entry is not None:
                self._entries[entry_id] = replace(
                    entry, next_attempt=self._clock() + timedelta(seconds=self._backoff(entry)))
        finally:
            self._active.discard(entry_id)
            self._wake.set()
            async with self._changed:
                self._changed.notify_all()

    def _backoff(self, entry: QueueEntry) -> float:
        step = self.settings.retry_base_s * (2 ** max(0, entry.attempts - 1))
        return float(min(self.settings.retry_max_s, step))

    async def wait_until(self, predicate: Callable[[list[QueueEntry]], bool],
                         timeout: float = 30.0) -> None:
        """Wait until ``predicate(entries)`` holds (for tests and shutdown)."""
        async def waiting() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.entries()))

        await asyncio.wait_for(waiting(), timeout)

    async def _attempt(self, entry_id: str) -> None:
        assert self._spool is not None
        spool = self._spool
        now = self._clock()
        # As on disk: the operator may have held or deleted it (letterlock queue).
        found = await asyncio.get_running_loop().run_in_executor(
            self._pool, spool.find, entry_id)
        if found is None or found.held:
            if found is None:
                self._entries.pop(entry_id, None)
            else:  # looked at again later, in case the release's news was lost
                self._entries[entry_id] = replace(
                    found, next_attempt=now + timedelta(seconds=HELD_RECHECK_S))
            return
        entry = read = found
        outcomes: dict[str, Outcome] = {}
        if (now - entry.created).total_seconds() >= self.settings.max_age_s:
            for address in entry.pending:
                last = next(r for r in entry.recipients if r.address == address)
                outcomes[address] = Outcome(FAILED, "4.4.7", "delivery time expired; last "
                                            f"error: {last.diagnostic or 'none'}", last.remote)
        else:
            message = await asyncio.get_running_loop().run_in_executor(
                self._pool, spool.read_message, entry)
            here, foreign = await deliver_here(self._delivery, entry.mail_from,
                                               entry.pending, message)
            outcomes.update(here)
            for hosts_key, addresses in self._groups(foreign).items():
                outcomes.update(await self._routes.send(hosts_key, addresses, entry.mail_from,
                                                        message))
        recipients = tuple(
            replace(r, state=outcomes[r.address].state, status=outcomes[r.address].status,
                    diagnostic=outcomes[r.address].diagnostic,
                    remote=outcomes[r.address].remote)
            if r.address in outcomes else r for r in entry.recipients)
        entry = replace(entry, attempts=entry.attempts + 1, recipients=recipients)
        entry = replace(entry, next_attempt=now + timedelta(seconds=self._backoff(entry)))
        _log_attempt(entry, outcomes)
        tried = entry
        original = _read_once(lambda: self._io(lambda: spool.read_message(tried)))
        entry = await self._notices.bounce(entry, original)
        entry = await self._notices.delay(entry, original)
        entry = replace(entry, next_attempt=self._next_attempt(entry, now))
        # Changed by the operator meanwhile: a deletion stands; a hold or a retry
        # time is kept over this attempt's own.
        now_on_disk = await asyncio.get_running_loop().run_in_executor(
            self._pool, spool.find, entry_id)
        if now_on_disk is None:
            await self._io(lambda: spool.remove(entry))
            self._entries.pop(entry_id, None)
            return
        if now_on_disk != read:
            entry = replace(entry, held=now_on_disk.held,
                            next_attempt=now_on_disk.next_attempt
                            if now_on_disk.next_attempt != read.next_attempt
                            else entry.next_attempt)
        if not entry.pending and all(r.state != FAILED or r.notified for r in entry.recipients):
            await self._io(lambda: spool.remove(entry))
            self._entries.pop(entry.id, None)
        else:
            await self._io(lambda: spool.write_env(entry))
            self._entries[entry.id] = entry

    def _groups(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for address in addresses:
            key = "" if self.settings.smarthost else address.rpartition("@")[2].lower()
            groups.setdefault(key, []).append(address)
        return groups

    def _next_attempt(self, entry: QueueEntry, now: datetime) -> datetime:
        """The backoff's time, or sooner: when the delay notice falls due (an attempt
        then gives it the freshest answer) or the message expires (the bounce goes
        then, not at the first attempt after). Never a time already past: a notice
        that could not be delivered waits for the backoff like the message."""
        times = [entry.created + timedelta(seconds=self.settings.max_age_s),
                 self._notices.delay_notice_due(entry)]
        return min([entry.next_attempt, *(t for t in times if t is not None and t > now)])

def _read_once(read: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[bytes]]:
    """The queued message, read (unsealed) at most once for the notices."""
    kept: list[bytes] = []

    async def original() -> bytes:
        if not kept:
            data = await read()
            assert isinstance(data, bytes)
            kept.append(data)
        return kept[0]

    return original


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_REPLY_CODE = re.compile(r"([2-5]\d\d) ")
_ATTEMPT_EVENTS = {SENT: LogEvent.OUTBOUND_SENT, PENDING: LogEvent.OUTBOUND_DEFERRED,
                   FAILED: LogEvent.OUTBOUND_FAILED}


def _log_attempt(entry: QueueEntry, outcomes: dict[str, Outcome]) -> None:
    """One line per recipient tried: its status code and the host that answered,
    never the remote's words (they may quote the address or the message)."""
    retry = _utc(entry.next_attempt)
    for address, outcome in outcomes.items():
        event(_ATTEMPT_EVENTS[outcome.state], rcpt=address, status=outcome.status,
              code=code.group(1) if (code := _REPLY_CODE.match(outcome.diagnostic)) else None,
              remote=outcome.remote or None, attempt=entry.attempts,
              next=retry if outcome.state == PENDING else None)

