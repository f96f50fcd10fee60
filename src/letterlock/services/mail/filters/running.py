"""Running an account's active filter at delivery: its actions as a plan.

Delivery (services/mail/delivery.py) asks :meth:`FilterRunner.plan` for each local
recipient with the envelope it arrived with. The plan says where copies go (INBOX or
other mailboxes, with flags), whether the message is refused (reject/ereject, RFC
5429: the SMTP or LMTP reply carries the reason) or dropped (discard); redirects
(RFC 5228 4.2) and vacation replies (RFC 5230) are queued outbound here.

Never lose mail: a filter that cannot be read or fails at run time keeps the
message in INBOX (RFC 5228 2.10.6, implicit keep), with one log line. Every action
is one log line (account, action, mailbox; never a subject or body).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from letterlock import sieve
from letterlock.errors import LetterlockError
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail.filters import messages
from letterlock.services.mail.filters.junk_filing import INBOX, junk_choice
from letterlock.services.mail.filters.scripts import FilterService
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger("letterlock.filters")

THREAD_ABOVE = 256 * 1024
"""Messages larger than this are filtered in a thread, off the event loop."""
PARSED_CACHE_MAX = 1000


class Sender(Protocol):
    """The outbound queue, as filters use it (services/mail/outbound.py)."""

    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes, *, sign_for: str | None = None) -> str:
        ...


@dataclass(frozen=True)
class Store:
    mailbox: str
    flags: tuple[str, ...] = ()
    create: bool = False


KEEP = (Store("INBOX"),)


@dataclass(frozen=True)
class Plan:
    stores: tuple[Store, ...] = KEEP
    """Where copies go; empty: nothing stored (discard, reject, redirect)."""
    reject: str | None = None
    """The refusal's reason (reject/ereject): the caller answers 550 5.7.1."""
    filtered: bool = False
    """Whether a script ran (False: no active script, plain delivery)."""
    notes: tuple[str, ...] = field(default=())


DEFAULT = Plan()


class FilterRunner:
    def __init__(self, filters: FilterService, *,
                 mailbox_names: Callable[[AccountRef], Awaitable[set[str]]],
                 clock: Callable[[], float] = time.time) -> None:
        self._filters = filters
        self._mailbox_names = mailbox_names
        self._clock = clock
        self._outbound: Sender | None = None
        self._parsed: dict[tuple[str, bytes], sieve.Script] = {}

    def attach_outbound(self, outbound: Sender | None) -> None:
        """Where redirects and replies are queued (set by the SMTP front-end; without
        one they are logged and skipped, the message kept)."""
        self._outbound = outbound

    async def _script(self, ref: AccountRef) -> sieve.Script | None:
        record = await self._filters.store(ref.region).active(ref.address)
        if record is None or record.delivery is None:
            return None
        key = (ref.address, hashlib.sha256(record.delivery).digest())
        script = self._parsed.get(key)
        if script is None:
            script = self._filters.check(self._filters.open_delivery_copy(ref, record))
            if len(self._parsed) >= PARSED_CACHE_MAX:
                self._parsed.clear()
            self._parsed[key] = script
        return script

    async def junk_in_inbox(self, ref: AccountRef) -> bool:
        """Whether ``ref``'s owner keeps junk in INBOX, flagged (junk_filing.py)."""
        return await junk_choice(self._filters, ref) == INBOX

    async def plan(self, ref: AccountRef, message: bytes, sender: str,
                   recipient: str) -> Plan:
        """What the active filter of ``ref`` does with ``message`` that arrived from
        ``sender`` for ``recipient`` (the envelope address that led to ``ref``)."""
        try:
            script = await self._script(ref)
        except (LetterlockError, UnicodeDecodeError) as exc:
            event(LogEvent.FILTER_FAILED, account=ref.address, reason=str(exc)[:120])
            return DEFAULT
        if script is None:
            return DEFAULT
        try:
            names = await self._mailbox_names(ref)
            envelope = sieve.Envelope(sender, recipient)

            def run() -> sieve.Outcome:
                return sieve.evaluate(script, message, envelope,
                                      mailbox_exists=lambda n: n in names,
                                      max_redirects=self._filters.limits.max_redirects)

            outcome = (await asyncio.to_thread(run) if len(message) > THREAD_ABOVE
                       else run())
        except Exception as exc:  # any failure of a script: keep the mail
            event(LogEvent.FILTER_FAILED, account=ref.address,
                  reason=f"{type(exc).__name__}: {exc}"[:120])
            return Plan(filtered=True)
        for error in outcome.errors:
            event(LogEvent.FILTER_FAILED, account=ref.address, reason=error[:120])
        try:
            return await self._actions(ref, message, sender, outcome.actions, names)
        except Exception as exc:  # e.g. the queue failing oddly: keep the mail
            event(LogEvent.FILTER_FAILED, account=ref.address,
                  reason=f"{type(exc).__name__}: {exc}"[:120])
            return Plan(filtered=True)

    async def _actions(self, ref: AccountRef, message: bytes, sender: str,
                       actions: Sequence[object], names: set[str]) -> Plan:
        stores: list[Store] = []
        reject: str | None = None
        for action in actions:
            if isinstance(action, sieve.Keep):
                stores.append(Store("INBOX", tuple(action.flags)))
                _logged(ref, "keep", "INBOX")
            elif isinstance(action, sieve.FileInto):
                box = action.mailbox
                if box not in names and not action.create:
                    # As Pigeonhole does: the mail is kept in INBOX, never lost.
                    log.info("%s: fileinto a missing mailbox: kept in INBOX", ref.address)
                    _logged(ref, "fileinto-missing", "INBOX")
                    box = "INBOX"
                else:
                    _logged(ref, "fileinto", box)
                stores.append(Store(box, tuple(action.flags), action.create))
            elif isinstance(action, sieve.Redirect):
                if not await self._redirect(ref, message, sender, action.address):
                    stores.append(Store("INBOX"))
            elif isinstance(action, sieve.Reject):
                reject = action.reason or "rejected by the recipient's filter"
                _logged(ref, "reject", None)
            elif isinstance(action, sieve.Discard):
                _logged(ref, "discard", None)
            elif isinstance(action, sieve.Vacation):
                await self._vacation(ref, message, sender, action)
        if not actions:
            stores.append(Store("INBOX"))
        unique = tuple(dict.fromkeys(stores))
        return Plan(unique, reject if not unique else None, filtered=True)

    async def _redirect(self, ref: AccountRef, message: bytes, sender: str,
                        address: str) -> bool:
        """Queue a redirected copy; False when it could not go (kept instead)."""
        if messages.redirect_count(message) >= self._filters.limits.max_redirects:
            log.warning("%s: redirect refused: the message was redirected too often",
                        ref.address)
            _logged(ref, "redirect-loop", None)
            return False
        if self._outbound is None:
            _logged(ref, "redirect-unavailable", None)
            return False
        try:
            # The original envelope sender stays (as Postfix and Pigeonhole forward).
            await self._outbound.submit(ref, sender, [address],
                                        messages.redirected(message, ref.address))
        except LetterlockError as exc:
            event(LogEvent.FILTER_FAILED, account=ref.address, reason=str(exc)[:120])
            return False
        _logged(ref, "redirect", None)
        return True

    def _vacation_key(self, ref: AccountRef, handle: str, sender: str) -> bytes:
        # Keyed, so the memory at rest names no correspondent.
        data = "\0".join((ref.address, handle, sender.lower())).encode("utf-8")
        return hmac.new(self._filters.vacation_key, data, hashlib.sha256).digest()

    async def _vacation(self, ref: AccountRef, message: bytes, sender: str,
                        action: sieve.Vacation) -> None:
        """RFC 5230 4.2: at most one reply per (handle, sender) per ``:days``."""
        if not sender or self._outbound is None:
            return
        store = self._filters.store(ref.region)
        key = self._vacation_key(ref, action.handle, sender)
        now = self._clock()
        until = await store.vacation_until(ref.address, key)
        if until is not None and until > now:
            _logged(ref, "vacation-already-replied", None)
            return
        reply = messages.vacation_reply(account=ref.address, sender=sender, message=message,
                                        reason=action.reason, subject=action.subject,
                                        from_=action.from_, mime=action.mime)
        try:
            # RFC 5230 5.1: the null sender; signed for the account's domain (From:).
            await self._outbound.submit(ref, "", [sender], reply,
                                        sign_for=ref.address.rpartition("@")[2])
        except LetterlockError as exc:
            event(LogEvent.FILTER_FAILED, account=ref.address, reason=str(exc)[:120])
            return
        await store.remember_vacation(ref.address, key, now + action.seconds)
        _logged(ref, "vacation", None)

    async def notify_rejected(self, ref: AccountRef, message: bytes, sender: str,
                              reason: str) -> None:
        """The refusal by mail, where the SMTP reply could not carry it (RFC 5429
        2.1); nothing for a null sender."""
        if not sender or self._outbound is None:
            return
        notice = messages.rejection_notice(account=ref.address, sender=sender,
                                           message=message, reason=reason)
        try:
            await self._outbound.submit(ref, "", [sender], notice,
                                        sign_for=ref.address.rpartition("@")[2])
        except LetterlockError as exc:
            event(LogEvent.FILTER_FAILED, account=ref.address, reason=str(exc)[:120])


def _logged(ref: AccountRef, action: str, mailbox: str | None) -> None:
    event(LogEvent.FILTER_ACTION, account=ref.address, action=action, mailbox=mailbox)
