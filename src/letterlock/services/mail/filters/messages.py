"""The messages a filter sends: a vacation auto-reply (RFC 5230 5), a redirected
copy with its loop guard, and a rejection notice (RFC 5429 2.1) when the refusal can
no longer be an SMTP reply."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from email.header import Header

from letterlock.mime.headers import split_fields
from letterlock.mime.summary import split_header

REDIRECT_GUARD = b"X-Letterlock-Sieve-Redirected"
"""Added to each redirected copy (naming the account); a message that already has as
many of them as a script may redirect is not redirected again (loops end)."""


def header_value(message: bytes, name: str) -> str:
    """The first ``name`` field of ``message`` (unfolded, raw), or ""."""
    header, _ = split_header(message)
    for field in split_fields(header):
        if field.key == name:
            return field.value.decode("utf-8", "replace").strip()
    return ""


def redirect_count(message: bytes) -> int:
    header, _ = split_header(message)
    return sum(1 for f in split_fields(header)
               if f.key == REDIRECT_GUARD.decode().lower())


def redirected(message: bytes, account: str) -> bytes:
    return REDIRECT_GUARD + b": " + account.encode("utf-8") + b"\r\n" + message


def _encoded(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()


def _clean(text: str) -> str:
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def _common(author: str, to: str, subject: str, message: bytes, domain: str) -> str:
    msgid = header_value(message, "message-id")
    refs = header_value(message, "references")
    lines = [f"From: {_encoded(_clean(author))}", f"To: <{to}>",
             f"Subject: {_encoded(_clean(subject))}",
             f"Date: {email.utils.format_datetime(datetime.now(UTC))}",
             f"Message-ID: {email.utils.make_msgid(domain=domain)}",
             "Auto-Submitted: auto-replied", "MIME-Version: 1.0"]
    if msgid:
        lines += [f"In-Reply-To: {_clean(msgid)}",
                  f"References: {_clean((refs + ' ' + msgid).strip())}"]
    return "\r\n".join(lines) + "\r\n"


def vacation_reply(*, account: str, sender: str, message: bytes, reason: str,
                   subject: str | None, from_: str | None, mime: bool) -> bytes:
    """RFC 5230 5: the reply to ``sender``; the subject defaults to ``Auto: `` and the
    original subject (as Pigeonhole does), the author to the account."""
    original = _clean(header_value(message, "subject"))
    subject = subject if subject else f"Auto: {original}" if original else "Automated reply"
    head = _common(from_ or account, sender, subject, message, account.rpartition("@")[2])
    if mime:  # :mime: the reason is a MIME entity, its own header fields included
        return (head + reason.replace("\r\n", "\n").replace("\n", "\r\n")).encode("utf-8")
    body = reason.replace("\r\n", "\n").replace("\n", "\r\n")
    return (head + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n").encode("utf-8")


def rejection_notice(*, account: str, sender: str, message: bytes, reason: str) -> bytes:
    """RFC 5429 2.1: told to the sender by mail when the SMTP transaction cannot
    carry the refusal (a recipient among others that accepted the message)."""
    head = _common(f"Mail Delivery System <MAILER-DAEMON@{account.rpartition('@')[2]}>",
                   sender, "Rejected: " + _clean(header_value(message, "subject")),
                   message, account.rpartition("@")[2])
    body = (f"Your message to <{account}> was rejected by the recipient's filter:\r\n\r\n"
            + reason.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n")
    return (head.replace("Auto-Submitted: auto-replied", "Auto-Submitted: auto-generated")
            + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body).encode("utf-8")
