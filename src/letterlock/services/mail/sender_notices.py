"""What the outbound queue tells a sender (RFC 3464): the bounce for recipients that
failed for good or outlived ``smtp.queue_max_age_s``, and one delayed-delivery notice
per message once it has waited ``smtp.delay_notice_s`` with recipients still being
retried. Both go to the submitting account's own mailbox (a local delivery: the
sender is always one of ours), sealed like any mail.

Never a notice about a message sent with a null reverse-path (``MAIL FROM:<>``) or
about a delivery report itself (RFC 3461 6.2, RFC 5321 4.5.5): no loops. A notice
that could not be delivered now is tried again after the next attempt; the entry
records what was sent, so each goes once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from letterlock.errors import LetterlockError
from letterlock.mime.summary import split_header
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.dsn import (
    FailedRecipient,
    build_delay_notice,
    build_dsn,
    is_delivery_report,
)
from letterlock.services.mail.queue_entry import FAILED, PENDING, QueueEntry
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger("letterlock.outbound")

Original = Callable[[], Awaitable[bytes]]
"""Reads the queued message (unsealed, in memory only)."""


class SenderNotices:
    def __init__(self, delivery: DeliveryService, accounts: AccountService, *,
                 hostname: str, delay_notice_s: float, max_age_s: float,
                 clock: Callable[[], datetime]) -> None:
        self._delivery = delivery
        self._accounts = accounts
        self._hostname = hostname
        self._delay_s = delay_notice_s
        self._max_age_s = max_age_s
        self._clock = clock

    def delay_notice_due(self, entry: QueueEntry) -> datetime | None:
        """When the delay notice of ``entry`` is due (None: off, sent, or nothing
        waits), so the queue can make an attempt then and report its answer."""
        if self._delay_s <= 0 or entry.delay_notified or not entry.pending:
            return None
        return entry.created + timedelta(seconds=self._delay_s)

    async def bounce(self, entry: QueueEntry, original: Original) -> QueueEntry:
        """Tell the sender about newly failed recipients (once each)."""
        failed = [r for r in entry.recipients if r.state == FAILED and not r.notified]
        if not failed:
            return entry
        if await self._may_notify(entry, original, "bounce"):
            dsn = build_dsn(reporting_mta=self._hostname, sender=entry.mail_from,
                            original=await original(), arrival=entry.created,
                            failed=[FailedRecipient(r.address, r.status, r.diagnostic,
                                                    r.remote) for r in failed],
                            now=self._clock())
            if not await self._deliver(entry, dsn, "bounce"):
                return entry
            event(LogEvent.OUTBOUND_BOUNCED, sender=entry.mail_from, rcpts=len(failed))
        done = {r.address for r in failed}
        return replace(entry, recipients=tuple(
            replace(r, notified=True) if r.address in done else r for r in entry.recipients))

    async def delay(self, entry: QueueEntry, original: Original) -> QueueEntry:
        """Send the delay notice if it is due: recipients still pending, each with
        its last transient status and the last remote answer."""
        due = self.delay_notice_due(entry)
        now = self._clock()
        if due is None or now < due:
            return entry
        if await self._may_notify(entry, original, "delay-notice"):
            waiting = [r for r in entry.recipients if r.state == PENDING]
            notice = build_delay_notice(
                reporting_mta=self._hostname, sender=entry.mail_from,
                original=await original(), arrival=entry.created,
                delayed=[FailedRecipient(r.address, r.status, r.diagnostic, r.remote)
                         for r in waiting],
                now=now, retry_until=entry.created + timedelta(seconds=self._max_age_s))
            if not await self._deliver(entry, notice, "delay-notice"):
                return entry
            event(LogEvent.OUTBOUND_DELAY_NOTICE, sender=entry.mail_from,
                  rcpts=len(waiting), waited=int((now - entry.created).total_seconds()))
        return replace(entry, delay_notified=True)

    async def _may_notify(self, entry: QueueEntry, original: Original, kind: str) -> bool:
        reason = ""
        if not entry.mail_from:
            reason = "null-sender"
        else:
            header, _ = split_header(await original())
            if is_delivery_report(header):
                reason = "delivery-report"
        if reason:
            event(LogEvent.OUTBOUND_NOTICE_SKIPPED, notice=kind, reason=reason)
            return False
        return True

    async def _deliver(self, entry: QueueEntry, message: bytes, kind: str) -> bool:
        try:
            ref = await self._accounts.resolve(entry.account)
            results = await self._delivery.deliver(message, [ref])
        except LetterlockError as exc:
            log.warning("%s for %s not delivered yet: %r", kind, entry.id, exc)
            return False
        return all(r.ok for r in results)
