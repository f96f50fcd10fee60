"""What each listener does with mail: the decisions behind the replies.

- :class:`MxHandler`: internet mail for hosted users only (no relay), delivered
  sealed into each recipient's home region before 250.
- :class:`LmtpHandler`: the same behind another MTA, one reply per recipient.
- :class:`SubmissionHandler`: authenticated users' outgoing mail: the sender must be
  the authenticated address; local recipients are delivered at once, the others go
  to the durable outbound queue.

Every handler only calls services; SMTP codes come from :mod:`letterlock.smtp.replies`.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from typing import ClassVar, Protocol

from letterlock.errors import AuthenticationFailed, InvalidInput, LetterlockError
from letterlock.mime.headers import parse_addresses, split_fields
from letterlock.mime.summary import split_header
from letterlock.services.accounts.accounts import AccountRef, AccountService, Session
from letterlock.services.mail.delivery import (
    DeliveryResult,
    DeliveryService,
    FilterEnvelope,
    Recipient,
    RecipientKind,
)
from letterlock.services.mail.screening import Decision, InboundScreen
from letterlock.services.operations.log_events import LogEvent, bind, event
from letterlock.smtp import replies
from letterlock.smtp.hooks import Envelope, PeerInfo
from letterlock.smtp.parse import MailParams
from letterlock.smtp.received import received_header
from letterlock.smtp.replies import Reply

log = logging.getLogger("letterlock.smtp")

Clock = Callable[[], datetime]


def _now() -> datetime:
    # Trace headers carry whole seconds (RFC 5322 date-time).
    return datetime.now(UTC).replace(microsecond=0)


class QueueIds:
    """Queue ids unique across processes and restarts without a system call each:
    a random per-handler prefix and a counter (16 hex digits)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4).upper()
        self._counter = itertools.count(secrets.randbelow(1 << 20))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08X}"


class Outbound(Protocol):
    """The part of the outbound queue submission needs."""

    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes) -> str:
        """Queue ``message`` durably for ``recipients``; returns the queue id."""
        ...


def _trace(peer: PeerInfo, hostname: str, queue_id: str, when: datetime,
           recipients: Sequence[str]) -> bytes:
    return received_header(helo=peer.helo, peer_ip=peer.ip, hostname=hostname,
                           protocol=peer.protocol, queue_id=queue_id, when=when,
                           recipient=recipients[0] if len(recipients) == 1 else None)


def _return_path(sender: str) -> bytes:
    safe = sender if sender.isascii() and sender.isprintable() and " " not in sender \
        else "invalid"
    return f"Return-Path: <{safe}>\r\n".encode("ascii")


def _unique_accounts(envelope: Envelope) -> list[AccountRef]:
    """Accounts to deliver to, each once (two RCPT spellings of one account, an
    account that is also in a group named, or two groups sharing a member)."""
    seen: dict[str, AccountRef] = {}
    for accepted in envelope.recipients:
        for ref in accepted.recipient.accounts:
            seen.setdefault(ref.address, ref)
    return list(seen.values())


def _filter_envelope(envelope: Envelope) -> FilterEnvelope:
    """The envelope each account's filter sees: the sender, and for each account
    the first RCPT address that led to it (an alias, a group, a +detail address)."""
    rcpts: dict[str, str] = {}
    for accepted in envelope.recipients:
        for ref in accepted.recipient.accounts:
            rcpts.setdefault(ref.address, accepted.address)
    return FilterEnvelope(envelope.sender, rcpts)


def _filter_refusal(text: str, address: str | None = None) -> Reply:
    """550 5.7.1 with the filter's reason (RFC 5429 2.1), made safe for one reply
    line: printable ASCII, at most 200 characters."""
    clean = "".join(c if c.isascii() and c.isprintable() else " " for c in text)
    clean = " ".join(clean.split())[:200] or "rejected"
    return Reply(550, "5.7.1", f"<{address}> {clean}" if address else clean)


async def _notify_rejected(delivery: DeliveryService, refs: Sequence[AccountRef],
                           results: Sequence[DeliveryResult], raw: bytes,
                           sender: str) -> None:
    """Rejections the reply cannot carry (other recipients took the message) are
    told to the sender by mail (RFC 5429 2.1)."""
    if delivery.filters is None:
        return
    by_address = {ref.address: ref for ref in refs}
    for result in results:
        if result.rejected is not None and result.address in by_address:
            await delivery.filters.notify_rejected(by_address[result.address], raw, sender,
                                                   result.rejected)


def _accepted(envelope: Envelope, message: bytes) -> None:
    event(LogEvent.MESSAGE_ACCEPTED, sender=envelope.sender, rcpts=len(envelope.recipients),
          size=len(message))


def _rcpt_reply(recipient: Recipient,
                foreign: Reply | None) -> tuple[Reply, Recipient | None]:
    """RCPT's reply for a classified address; ``foreign`` is the refusal for another
    domain's address, or None to accept it."""
    if recipient.kind is RecipientKind.LOCAL:
        return replies.RECIPIENT_OK, recipient
    if recipient.kind is RecipientKind.UNKNOWN_USER:
        return replies.UNKNOWN_USER, None
    if recipient.kind is RecipientKind.FOREIGN:
        return (replies.RECIPIENT_OK, recipient) if foreign is None else (foreign, None)
    return replies.BAD_ADDRESS, None


class _Refusal(Exception):
    """The screen refused the message (raised by MxHandler._deliver, which LMTP
    shares but never screens)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class MxHandler:
    _foreign: ClassVar[Reply] = replies.RELAY_DENIED
    """The refusal for an address of a domain not hosted here (no relay)."""

    def __init__(self, delivery: DeliveryService, hostname: str, clock: Clock = _now, *,
                 screen: InboundScreen | None = None) -> None:
        self._delivery = delivery
        self._hostname = hostname
        self._clock = clock
        self._screen = screen
        """Sender checks, DMARC and the spam filter (MX only; None: deliver as is)."""
        self._queue_ids = QueueIds()

    async def authenticate(self, peer: PeerInfo, login: str, password: str) -> Session | None:
        return None

    async def mail(self, peer: PeerInfo, sender: str, params: MailParams) -> Reply:
        return replies.SENDER_OK

    async def rcpt(self, peer: PeerInfo, envelope: Envelope,
                   address: str) -> tuple[Reply, Recipient | None]:
        return _rcpt_reply(await self._delivery.classify(address), self._foreign)

    async def _deliver(self, peer: PeerInfo, envelope: Envelope,
                       message: bytes) -> tuple[str, list[DeliveryResult]]:
        queue_id = self._queue_ids()
        bind(queue=queue_id)  # on every line about this message, in every service
        refs = _unique_accounts(envelope)
        trace = _trace(peer, self._hostname, queue_id, self._clock(),
                       [r.address for r in refs])
        checked, junk = b"", False
        if self._screen is not None:
            screened = await self._screen.screen(
                message, ip=peer.ip, helo=peer.helo, sender=envelope.sender,
                recipients=[a.address for a in envelope.recipients], trace=trace,
                queue_id=queue_id)
            refusal = replies.for_screening(screened.decision, screened.because)
            if refusal is not None:
                raise _Refusal(refusal)
            checked, message = screened.prefix, screened.message
            junk = screened.decision is Decision.JUNK
        raw = _return_path(envelope.sender) + trace + checked + message
        if junk:  # set aside before any filter runs
            return queue_id, await self._delivery.deliver_junk(raw, refs)
        return queue_id, await self._delivery.deliver(raw, refs,
                                                      envelope=_filter_envelope(envelope))

    async def data(self, peer: PeerInfo, envelope: Envelope, message: bytes) -> list[Reply]:
        try:
            queue_id, results = await self._deliver(peer, envelope, message)
        except _Refusal as refusal:  # DMARC or the spam filter said no
            return [refusal.reply]
        rejected = [r for r in results if r.rejected is not None]
        if rejected and len(rejected) == len(results):  # every filter refused it
            return [_filter_refusal(rejected[0].rejected or "")]
        if rejected:
            await _notify_rejected(self._delivery, _unique_accounts(envelope), rejected,
                                   message, envelope.sender)
            results = [r for r in results if r.rejected is None]
        failed = [r for r in results if not r.ok]
        if failed:
            # Some copies may be stored: a retry can duplicate them, never lose any.
            log.warning("delivery %s failed for %d recipient(s): %s", queue_id, len(failed),
                        failed[0].error)
            return [_failed_reply(results)]
        _accepted(envelope, message)
        return [Reply(250, "2.0.0", f"OK queued as {queue_id}")]


class LmtpHandler(MxHandler):
    # Behind another MTA there is no relaying to refuse: the user is simply not here.
    _foreign = replies.UNKNOWN_USER

    async def data(self, peer: PeerInfo, envelope: Envelope, message: bytes) -> list[Reply]:
        queue_id, results = await self._deliver(peer, envelope, message)
        by_account = {r.address: r for r in results}
        out = []
        for accepted in envelope.recipients:
            # A group's RCPT is delivered when every member's copy is.
            mine = [by_account.get(ref.address) for ref in accepted.recipient.accounts]
            refused = [r for r in mine if r is not None and r.rejected is not None]
            if refused and len(refused) == len(mine):
                out.append(_filter_refusal(refused[0].rejected or "", accepted.address))
                continue
            if refused:  # a group some of whose members refused it
                await _notify_rejected(self._delivery, accepted.recipient.accounts,
                                       refused, message, envelope.sender)
                mine = [r for r in mine if r is None or r.rejected is None]
            if mine and all(r is not None and r.ok for r in mine):
                out.append(Reply(250, "2.0.0", f"<{accepted.address}> delivered as {queue_id}"))
            elif mine and all(r is not None and (r.ok or r.over_quota) for r in mine):
                out.append(replace(replies.MAILBOX_FULL,
                                   text=f"<{accepted.address}> {replies.MAILBOX_FULL.text}"))
            else:
                out.append(Reply(451, "4.3.0", f"<{accepted.address}> try again later"))
        if any(r.ok for r in results):
            _accepted(envelope, message)
        return out


class SubmissionHandler:
    def __init__(self, delivery: DeliveryService, accounts: AccountService,
                 outbound: Outbound | None, hostname: str, clock: Clock = _now) -> None:
        self._delivery = delivery
        self._accounts = accounts
        self._outbound = outbound
        self._hostname = hostname
        self._clock = clock
        self._queue_ids = QueueIds()

    async def authenticate(self, peer: PeerInfo, login: str, password: str) -> Session | None:
        try:
            return await self._accounts.authenticate(login, password, client=peer.ip)
        except (AuthenticationFailed, InvalidInput):
            return None

    async def mail(self, peer: PeerInfo, sender: str, params: MailParams) -> Reply:
        if peer.identity is None:
            return replies.AUTH_REQUIRED
        if await self._delivery.owns(peer.identity.ref, sender):
            return replies.SENDER_OK
        event(LogEvent.SENDER_REFUSED, user=peer.identity.address, sender=sender[:254],
              where="mail-from")
        return replies.NOT_OWNED_SENDER

    async def _foreign_author(self, identity: Session, message: bytes) -> bool:
        """Whether From: or Sender: names an address ``identity`` may not send as
        (RFC 6409 4.1): such mail would leave DKIM-signed for the domain. Every
        occurrence of each field is checked; one line is logged for a refusal."""
        header, _ = split_header(message)
        for field in split_fields(header):
            if field.key not in ("from", "sender"):
                continue
            for box in parse_addresses(field.value):
                if box.host is None or box.mailbox is None:
                    continue  # group syntax markers
                address = f"{box.mailbox}@{box.host}"
                if not await self._delivery.owns(identity.ref, address):
                    event(LogEvent.SENDER_REFUSED, user=identity.address,
                          sender=address[:254], where=field.key)
                    return True
        return False

    async def rcpt(self, peer: PeerInfo, envelope: Envelope,
                   address: str) -> tuple[Reply, Recipient | None]:
        # Other domains are accepted only when there is a queue to send them through.
        return _rcpt_reply(await self._delivery.classify(address),
                           None if self._outbound is not None else replies.RELAY_DENIED)

    def _complete(self, message: bytes, sender: str, author: str, when: datetime) -> bytes:
        """RFC 6409 8.2/8.3: add Date and Message-ID when the client left them out; and
        From (RFC 5322 3.6 requires one), naming the authenticated ``author``: without
        it the message could not be DKIM-signed for other domains, and local and remote
        recipients must get the same message."""
        header, _ = split_header(message)
        names = {line.split(b":", 1)[0].strip().lower()
                 for line in header.split(b"\n") if b":" in line and line[:1] not in b" \t"}
        extra = b""
        if b"from" not in names:
            extra += f"From: <{author}>\r\n".encode()
        if b"date" not in names:
            extra += f"Date: {format_datetime(when)}\r\n".encode("ascii")
        if b"message-id" not in names:
            domain = sender.rpartition("@")[2] or self._hostname
            extra += f"Message-ID: {make_msgid(domain=domain)}\r\n".encode("ascii")
        return extra + message

    async def data(self, peer: PeerInfo, envelope: Envelope, message: bytes) -> list[Reply]:
        assert peer.identity is not None
        if await self._foreign_author(peer.identity, message):
            return [replies.NOT_OWNED_AUTHOR]
        queue_id = self._queue_ids()
        bind(queue=queue_id)
        when = self._clock()
        message = self._complete(message, envelope.sender, peer.identity.address, when)
        local = _unique_accounts(envelope)
        foreign = list(dict.fromkeys(a.recipient.address for a in envelope.recipients
                                     if a.recipient.kind is RecipientKind.FOREIGN))
        trace = _trace(peer, self._hostname, queue_id, when,
                       [a.address for a in envelope.recipients])
        try:
            # The queue first: it signs, which can refuse the message for good (5.6.0),
            # and then no local recipient has a copy of a message the client was told
            # failed.
            if foreign:
                assert self._outbound is not None
                await self._outbound.submit(peer.identity.ref, envelope.sender, foreign,
                                            trace + message)
            if local:
                raw = _return_path(envelope.sender) + trace + message
                results = await self._delivery.deliver(raw, local,
                                                       envelope=_filter_envelope(envelope))
                refused = [r for r in results if r.rejected is not None]
                await _notify_rejected(self._delivery, local, refused, message,
                                       envelope.sender)
                results = [r for r in results if r.rejected is None]
                if not all(r.ok for r in results):
                    return [_failed_reply(results)]
        except LetterlockError as exc:
            log.warning("submission %s failed: %r", queue_id, exc)
            return [replies.reply_for_error(exc)]
        _accepted(envelope, message)
        return [Reply(250, "2.0.0", f"OK queued as {queue_id}")]


def _failed_reply(results: Sequence[DeliveryResult]) -> Reply:
    """The one reply to a DATA some copies of which were not stored: 552 5.2.2 when
    none was stored and every failure is a full mailbox (retrying will not help),
    else try again later (a retry may duplicate stored copies, never lose one)."""
    if all(not r.ok and r.over_quota for r in results):
        return replies.MAILBOX_FULL
    return replies.TRY_LATER
