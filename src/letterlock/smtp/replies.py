"""SMTP replies: the :class:`Reply` value, the enhanced status codes (RFC 3463) the
listeners add to aiosmtpd's plain replies, and the mapping of domain errors to
replies. The domain never sees an SMTP code; this module is the only translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from letterlock.errors import (
    AuthenticationFailed,
    ConfigError,
    CryptoError,
    InvalidAddress,
    InvalidInput,
    InvalidMessage,
    LetterlockError,
    MatterOpen,
    NotInitialised,
    QuotaExceeded,
    Refused,
    StorageError,
    UnknownAccount,
    UnknownDomain,
    UnknownMailbox,
)
from letterlock.services.mail.screening import Because, Decision

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: a three-digit code, an enhanced status code and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}" if self.status \
            else f"{self.code} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500


# Replies the listeners give, by name, so handlers and tests share one spelling.
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "Message accepted for delivery")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_TRY_LATER = Reply(454, "4.7.0", "Temporary authentication failure, try again later")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
UNKNOWN_USER = Reply(550, "5.1.1", "No such user here")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
BAD_ADDRESS = Reply(553, "5.1.3", "Invalid address")
NOT_OWNED_SENDER = Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
NOT_OWNED_AUTHOR = Reply(550, "5.7.1", "From: or Sender: names an address not owned by "
                         "the authenticated user (RFC 6409 4.1)")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full")
DATA_IN_FLIGHT = Reply(452, "4.3.1", "Too much mail arriving at once, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
TRY_LATER = Reply(451, "4.3.0", "Temporary failure, try again later")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address")
TOO_MANY_COMMANDS = Reply(421, "4.7.0", "Too many commands from your address, slow down")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down")
DMARC_REJECTED = Reply(550, "5.7.1", "Message refused: the sender domain's DMARC policy "
                       "rejects unauthenticated mail")
SPAM_REJECTED = Reply(550, "5.7.1", "Message refused as spam")
SPAM_DEFERRED = Reply(451, "4.7.1", "Try again later")


def for_screening(decision: Decision, because: Because) -> Reply | None:
    """The refusal for what the inbound screen decided, or None to deliver."""
    if decision is Decision.REJECT:
        return DMARC_REJECTED if because is Because.DMARC else SPAM_REJECTED
    if decision is Decision.DEFER:
        return SPAM_DEFERRED
    return None


def reply_for_error(exc: BaseException) -> Reply:
    """The reply for an error raised while handling a command.

    Anything that is not a domain error is an internal failure: the client is told
    to retry later (never a permanent failure for our own bug) and given no detail.
    """
    if isinstance(exc, InvalidAddress):
        return BAD_ADDRESS
    if isinstance(exc, InvalidMessage):
        # RFC 3463 5.6.0: the content is the problem; the client must not retry as is.
        return Reply(554, "5.6.0", f"Message refused: {exc}"[:200])
    if isinstance(exc, UnknownAccount):
        return UNKNOWN_USER
    if isinstance(exc, UnknownDomain):
        return RELAY_DENIED
    if isinstance(exc, UnknownMailbox):
        return Reply(550, "5.2.0", "Mailbox unavailable")
    if isinstance(exc, QuotaExceeded):
        return MAILBOX_FULL
    if isinstance(exc, MatterOpen):
        return Reply(450, "4.2.1", "Mailbox temporarily unavailable")
    if isinstance(exc, Refused):
        return Reply(550, "5.7.1", "Refused by policy")
    if isinstance(exc, AuthenticationFailed):
        return AUTH_FAILED
    if isinstance(exc, InvalidInput):
        return Reply(501, "5.5.4", "Invalid arguments")
    if isinstance(exc, NotInitialised | ConfigError):
        return Reply(421, "4.3.0", "Service not available")
    if isinstance(exc, StorageError | CryptoError | LetterlockError):
        return TRY_LATER
    return TRY_LATER


# Enhanced codes for aiosmtpd's own replies, which carry none (RFC 2034 requires
# one on every reply but the greeting, EHLO/HELO and intermediate 334/354 replies).
_DEFAULT_STATUS = {
    211: "2.0.0", 214: "2.0.0", 221: "2.0.0", 235: "2.7.0", 250: "2.0.0", 252: "2.5.0",
    421: "4.3.0", 432: "4.7.12", 450: "4.2.0", 451: "4.3.0", 452: "4.3.1", 454: "4.7.0",
    500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0",
    534: "5.7.9", 535: "5.7.8", 538: "5.7.11", 550: "5.0.0", 552: "5.3.4",
    553: "5.1.3", 554: "5.0.0", 555: "5.5.4",
}


def printable(text: str) -> str:
    """Reply text with every control character and undecodable octet (kept by the
    command reader as a surrogate) replaced by ``?``: a reply that quotes the client
    can neither end early (CR, LF), forge a second reply line, carry NUL or terminal
    escapes to a log, nor fail to encode."""
    return text if text.isprintable() else _UNPRINTABLE.sub("?", text)


def with_enhanced_status(line: str) -> str:
    """Add an enhanced status code to a final reply line that lacks one.

    ``"503 Error: need MAIL command"`` becomes ``"503 5.5.1 Error: need MAIL command"``;
    lines that have a code, intermediate replies and continuation lines are unchanged.
    """
    if len(line) < 4 or not line[:3].isdigit() or line[3] not in " -":
        return line
    code = int(line[:3])
    rest = line[4:]
    status = _DEFAULT_STATUS.get(code)
    if status is None or _ENHANCED.match(rest):
        return line
    return f"{line[:4]}{status} {rest}"
