"""The vacation action (RFC 5230): its handle, its period, and the checks that need
only the message and envelope (sections 4.5 and 4.6). The caller keeps the memory of
whom it replied to, keyed by (handle, sender)."""

from __future__ import annotations

import hashlib

from letterlock.sieve.actions import Envelope, Vacation
from letterlock.sieve.message import Message
from letterlock.sieve.syntax import Node

DAY = 86400
MIN_PERIOD = DAY
"""Pigeonhole's default minimum (sieve_vacation_min_period = 1d)."""
MAX_PERIOD = 60 * DAY
"""Pigeonhole's default maximum (sieve_vacation_max_period = 60d)."""

_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe",
                 "list-post", "list-owner", "list-archive")
_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


def vacation_of(node: Node) -> Vacation:
    """The Vacation action a vacation command asks for (before the checks)."""
    reason = node.string(0)
    subject = node.tag("subject")
    from_ = node.tag("from")
    addresses = node.tag("addresses")
    mime = bool(node.tag("mime"))
    days, seconds = node.tag("days"), node.tag("seconds")
    period = seconds if isinstance(seconds, int) else \
        (days if isinstance(days, int) else 7) * DAY
    period = min(max(period, MIN_PERIOD), MAX_PERIOD)
    handle = node.tag("handle")
    if not isinstance(handle, str):
        digest = hashlib.sha256()
        for item in (reason, subject, from_, "mime" if mime else ""):
            digest.update((item if isinstance(item, str) else "").encode("utf-8", "replace"))
            digest.update(b"\x00")
        handle = digest.hexdigest()[:32]
    return Vacation(reason, subject if isinstance(subject, str) else None,
                    from_ if isinstance(from_, str) else None,
                    addresses if isinstance(addresses, tuple) else (),
                    period // DAY, period, mime, handle)


def _bare(address: str) -> str:
    """Lower-case address without angle brackets and without its +detail."""
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


def may_reply(action: Vacation, message: Message, envelope: Envelope) -> bool:
    """RFC 5230 4.5-4.6: no reply to the null sender, to automatic or list mail, to
    system senders, to oneself, nor when the user is not a visible recipient."""
    sender = _bare(envelope.sender)
    if not sender or "@" not in sender:
        return False
    local = sender.split("@", 1)[0]
    if local in ("mailer-daemon", "listserv", "majordomo") or local.startswith("owner-") \
            or local.endswith("-request"):
        return False
    for value in message.headers("auto-submitted"):
        if value.split(";", 1)[0].strip().lower() != "no":
            return False
    if any(message.has(name) for name in _LIST_HEADERS):
        return False
    if any(v.lower() in ("bulk", "junk", "list") for v in message.headers("precedence")):
        return False
    own = {_bare(a) for a in (envelope.recipient, *action.addresses)}
    if action.from_:
        own.add(_bare(action.from_.rpartition("<")[2].rstrip(">")))
    if sender in own:
        return False
    seen = {_bare(f"{local}@{domain}") for name in _RECIPIENT_HEADERS
            for local, domain in message.addresses(name)}
    return bool(seen & own)
