"""Domain errors as IMAP replies (RFC 9051 7.1 response codes, RFC 5530).

The domain never knows IMAP; this table is the one translation."""

from __future__ import annotations

from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Busy,
    CryptoError,
    InvalidInput,
    LetterlockError,
    MailboxNotAllowed,
    MatterOpen,
    NotFound,
    QuotaExceeded,
    Refused,
    StorageError,
    UnknownMailbox,
)
from letterlock.imap.reply import Reply

_TABLE: tuple[tuple[type[LetterlockError], str, str], ...] = (
    (UnknownMailbox, "NONEXISTENT", "no such mailbox"),
    (NotFound, "NONEXISTENT", "not found"),
    (AlreadyExists, "ALREADYEXISTS", "already exists"),
    (QuotaExceeded, "OVERQUOTA", "over quota"),
    (MatterOpen, "CANNOT", "not allowed while a legal matter is open"),
    (MailboxNotAllowed, "CANNOT", "not allowed"),
    (Refused, "CANNOT", "not allowed"),
    (AuthenticationFailed, "AUTHENTICATIONFAILED", "authentication failed"),
    (Busy, "UNAVAILABLE", "busy, try again later"),
    (InvalidInput, "CANNOT", "invalid"),
    (CryptoError, "CORRUPTION", "stored data failed to open"),
    (StorageError, "UNAVAILABLE", "storage is unavailable, try again"),
)


def reply_for(error: LetterlockError, *, trycreate: bool = False) -> Reply:
    """The tagged NO for a domain error. ``trycreate``: the command names a target
    mailbox that may be created (APPEND, COPY, MOVE)."""
    if trycreate and isinstance(error, UnknownMailbox):
        return Reply("NO", "TRYCREATE", "no such mailbox")
    for kind, code, text in _TABLE:
        if isinstance(error, kind):
            detail = str(error)
            if kind in (AuthenticationFailed, Busy, StorageError, CryptoError) or not detail:
                detail = text
            return Reply("NO", code, _printable(detail))
    return Reply("NO", "SERVERBUG", "unexpected error")


def _printable(text: str) -> str:
    cleaned = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)
    return cleaned[:200] or "failed"
