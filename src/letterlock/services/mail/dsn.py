"""Delivery status notifications (RFC 3464): the bounce a sender gets when the
outbound queue gives up on some recipients, and the delay notice when it is still
trying after a while. Pure: values in, message bytes out."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from letterlock.mime.summary import split_header

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_TRANSIENT = re.compile(r"^4\.\d{1,3}\.\d{1,3}$")
_REPLY = re.compile(r"^[2-5]\d\d[ -]")


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    status: str
    """Enhanced status code, e.g. ``5.1.1`` or ``4.4.7`` (expired); for a delay
    notice the last transient one (``4.x.x``)."""
    diagnostic: str
    """The remote server's reply, or our reason, as text."""
    remote_mta: str = ""


def _clean(text: str, limit: int = 900) -> str:
    return "".join(ch if 0x20 <= ord(ch) < 0x7f else "?" for ch in text)[:limit]


def build_dsn(*, reporting_mta: str, sender: str, original: bytes, arrival: datetime,
              failed: Sequence[FailedRecipient], now: datetime) -> bytes:
    """A multipart/report; report-type=delivery-status message to ``sender`` about
    ``failed`` recipients (Action: failed), carrying the original message's header
    section."""
    return _report(reporting_mta, sender, original, arrival, failed, now, action="failed",
                   subject="Undelivered Mail Returned to Sender",
                   intro=["Your message could not be delivered to the following "
                          "recipient(s):"])


def build_delay_notice(*, reporting_mta: str, sender: str, original: bytes,
                       arrival: datetime, delayed: Sequence[FailedRecipient], now: datetime,
                       retry_until: datetime) -> bytes:
    """The same report with Action: delayed (RFC 3464 2.3.3) for recipients still
    being retried: each with its last transient status (4.x.x) and the last answer
    of the receiving server, and Will-Retry-Until (2.3.8)."""
    return _report(reporting_mta, sender, original, arrival, delayed, now, action="delayed",
                   subject="Delayed Mail (still being retried)",
                   intro=["Your message has not been delivered yet to the following",
                          "recipient(s). Nothing needs to be done: delivery is retried",
                          f"until {format_datetime(retry_until)}, and you will be told",
                          "if it fails for good."],
                   retry_until=retry_until)


def _report(reporting_mta: str, sender: str, original: bytes, arrival: datetime,
            items: Sequence[FailedRecipient], now: datetime, *, action: str, subject: str,
            intro: list[str], retry_until: datetime | None = None) -> bytes:
    boundary = f"=_letterlock_{secrets.token_hex(12)}"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{_clean(sender, 254)}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system at {reporting_mta}.",
        "",
        *intro,
        "",
    ]
    for item in items:
        lines.append(f"  <{_clean(item.address, 254)}>: {_clean(item.diagnostic, 300)}")
    lines += ["", f"--{boundary}", "Content-Type: message/delivery-status", "",
              f"Reporting-MTA: dns; {reporting_mta}",
              f"Arrival-Date: {format_datetime(arrival)}"]
    for item in items:
        if action == "delayed":
            status = item.status if _TRANSIENT.match(item.status) else "4.0.0"
        else:
            status = item.status if _STATUS.match(item.status) else "5.0.0"
        lines += ["", f"Final-Recipient: rfc822; {_clean(item.address, 254)}",
                  f"Action: {action}", f"Status: {status}"]
        if item.remote_mta:
            lines.append(f"Remote-MTA: dns; {_clean(item.remote_mta, 254)}")
        if item.diagnostic:
            # smtp: a receiving server's reply; our own reason (no connection, a
            # TLS policy) is plain text under a private type (RFC 3464 2.1.2).
            kind = "smtp" if _REPLY.match(item.diagnostic) else "X-Letterlock"
            lines.append(f"Diagnostic-Code: {kind}; {_clean(item.diagnostic)}")
        lines.append(f"Last-Attempt-Date: {format_datetime(now)}")
        if retry_until is not None:
            lines.append(f"Will-Retry-Until: {format_datetime(retry_until)}")
    lines += ["", f"--{boundary}", "Content-Type: text/rfc822-headers", ""]
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    header, _ = split_header(original)
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + header.rstrip(b"\r\n") + b"\r\n" + tail


def is_delivery_report(header: bytes) -> bool:
    """Whether a message's header section makes it a delivery status report (a
    bounce or a delay notice): none is ever sent about such a message (RFC 3461 /
    RFC 3464: no report about a report)."""
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", header).lower()
    for line in unfolded.split(b"\n"):
        if line.startswith(b"content-type:") and b"multipart/report" in line \
                and b"delivery-status" in line:
            return True
    return False
