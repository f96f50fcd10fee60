"""The typed contract between the SMTP/LMTP protocol and what decides about mail:
the facts a handler is given (the peer, the envelope) and the hooks it implements
(:class:`SmtpHandler`), each returning the reply to send. ``handlers`` holds the
implementations for MX, submission and LMTP; ``protocol`` calls them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.delivery import Recipient
from letterlock.smtp.parse import MailParams
from letterlock.smtp.replies import Reply


class ListenerKind(enum.Enum):
    MX = "mx"
    SUBMISSION = "submission"
    LMTP = "lmtp"


@dataclass(frozen=True)
class PeerInfo:
    """What a handler may know about the client at the time of a command."""

    ip: str
    port: int
    helo: str
    tls: bool
    identity: Session | None
    """The authenticated account (submission), or None."""
    kind: ListenerKind

    @property
    def protocol(self) -> str:
        """RFC 3848 ``with`` keyword for the Received header."""
        if self.kind is ListenerKind.LMTP:
            return "LMTPS" if self.tls else "LMTP"
        base = "ESMTP"
        if self.tls:
            base += "S"
        if self.identity is not None:
            base += "A"
        return base


@dataclass(frozen=True)
class Accepted:
    """A recipient the handler accepted at RCPT."""

    address: str
    recipient: Recipient


@dataclass(frozen=True)
class Envelope:
    sender: str
    """Reverse-path; ``""`` is the null sender of a bounce."""
    recipients: tuple[Accepted, ...]
    params: MailParams


class SmtpHandler(Protocol):
    """What to do with each command; every method returns the reply to send."""

    async def authenticate(self, peer: PeerInfo, login: str, password: str) -> Session | None:
        """The session for valid credentials, or None (RFC 4954: 535 follows)."""
        ...

    async def mail(self, peer: PeerInfo, sender: str, params: MailParams) -> Reply:
        """Accept or refuse the reverse-path (RFC 5321 4.1.1.2)."""
        ...

    async def rcpt(self, peer: PeerInfo, envelope: Envelope,
                   address: str) -> tuple[Reply, Recipient | None]:
        """Accept (returning the classified recipient) or refuse one forward-path."""
        ...

    async def data(self, peer: PeerInfo, envelope: Envelope, message: bytes) -> list[Reply]:
        """Take responsibility for ``message``: a positive reply only once it is
        durable. SMTP uses the first reply; LMTP needs one per accepted recipient."""
        ...
