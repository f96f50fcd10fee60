"""What a Sieve run decides: the envelope it sees, the actions it returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope of the delivery being filtered."""

    sender: str
    """MAIL FROM; "" for the null sender."""
    recipient: str
    """The RCPT TO address that led here (with +detail if any)."""


@dataclass(frozen=True)
class Keep:
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileInto:
    mailbox: str
    """In UTF-8, not modified UTF-7."""
    flags: tuple[str, ...] = ()
    copy: bool = False
    create: bool = False


@dataclass(frozen=True)
class Redirect:
    address: str
    copy: bool = False


@dataclass(frozen=True)
class Reject:
    reason: str
    extended: bool = False
    """True for ereject (RFC 5429)."""


@dataclass(frozen=True)
class Discard:
    pass


@dataclass(frozen=True)
class Vacation:
    """An auto-reply that may go (RFC 5230 4.5-4.6 checks passed). The caller sends
    at most one per (handle, sender) per ``seconds``."""

    reason: str
    subject: str | None
    from_: str | None
    addresses: tuple[str, ...]
    days: int
    seconds: int
    mime: bool
    handle: str


Action = Keep | FileInto | Redirect | Reject | Discard | Vacation


@dataclass(frozen=True)
class Outcome:
    actions: tuple[Action, ...]
    """Final: implicit keep applied, cancelled keeps removed, duplicates merged."""
    errors: tuple[str, ...] = ()
    """Runtime problems; when there are any the actions are a plain Keep."""
