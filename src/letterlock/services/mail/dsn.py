"""Delivery status notifications (RFC 3464): the bounce a sender gets when the
outbound queue gives up on some recipients. Pure: values in, message bytes out."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from letterlock.mime.summary import split_header

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    status: str
    """Enhanced status code, e.g. ``5.1.1`` or ``4.4.7`` (expired)."""
    diagnostic: str
    """The remote server's reply, or our reason, as text."""
    remote_mta: str = ""


def _clean(text: str, limit: int = 900) -> str:
    return "".join(ch if 0x20 <= ord(ch) < 0x7f else "?" for ch in text)[:limit]


def build_dsn(*, reporting_mta: str, sender: str, original: bytes, arrival: datetime,
              failed: Sequence[FailedRecipient], now: datetime) -> bytes:
    """A multipart/report; report-type=delivery-status message to ``sender`` about
    ``failed`` recipients, carrying the original message's header section."""
    boundary = f"=_letterlock_{secrets.token_hex(12)}"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{_clean(sender, 254)}>",
        "Subject: Undelivered Mail Returned to Sender",
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
        "Your message could not be delivered to the following recipient(s):",
        "",
    ]
    for item in failed:
        lines.append(f"  <{_clean(item.address, 254)}>: {_clean(item.diagnostic, 300)}")
    lines += ["", f"--{boundary}", "Content-Type: message/delivery-status", "",
              f"Reporting-MTA: dns; {reporting_mta}",
              f"Arrival-Date: {format_datetime(arrival)}"]
    for item in failed:
        status = item.status if _STATUS.match(item.status) else "5.0.0"
        lines += ["", f"Final-Recipient: rfc822; {_clean(item.address, 254)}",
                  "Action: failed", f"Status: {status}"]
        if item.remote_mta:
            lines.append(f"Remote-MTA: dns; {_clean(item.remote_mta, 254)}")
        if item.diagnostic:
            lines.append(f"Diagnostic-Code: smtp; {_clean(item.diagnostic)}")
        lines.append(f"Last-Attempt-Date: {format_datetime(now)}")
    lines += ["", f"--{boundary}", "Content-Type: text/rfc822-headers", ""]
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    header, _ = split_header(original)
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + header.rstrip(b"\r\n") + b"\r\n" + tail
