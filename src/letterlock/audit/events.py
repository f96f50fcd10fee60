"""The closed vocabulary of audit events (``source:subject:action``) and the sink
interface every service writes through.

No free-form event strings: a new kind of event is a new member here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class EventType(enum.StrEnum):
    # admin actions
    ADMIN_REGION_ADDED = "admin:region:added"
    ADMIN_REGION_BACKED_UP = "admin:region:backed-up"
    ADMIN_REGION_RESTORED = "admin:region:restored"
    ADMIN_DOMAIN_ADDED = "admin:domain:added"
    ADMIN_ACCOUNT_CREATED = "admin:account:created"
    ADMIN_ACCOUNT_DELETED = "admin:account:deleted"
    ADMIN_ACCOUNT_MOVED = "admin:account:moved"
    ADMIN_ACCOUNT_DISABLED = "admin:account:disabled"
    ADMIN_ACCOUNT_ENABLED = "admin:account:enabled"
    ADMIN_ADDRESS_ADDED = "admin:address:added"
    ADMIN_ADDRESS_REMOVED = "admin:address:removed"
    ADMIN_SEND_AS_GRANTED = "admin:send-as:granted"
    ADMIN_SEND_AS_REVOKED = "admin:send-as:revoked"
    ADMIN_OPERATOR_ADDED = "admin:operator:added"
    ADMIN_OPERATOR_REMOVED = "admin:operator:removed"
    ADMIN_OPERATOR_PASSWORD_SET = "admin:operator:password-set"
    ADMIN_MAIL_IMPORTED = "admin:mail:imported"
    ADMIN_MAIL_EXPORTED = "admin:mail:exported"
    # account self-service that matters to the owner
    ACCOUNT_PASSWORD_CHANGED = "account:password:changed"
    ACCOUNT_KEY_RECOVERED = "account:key:recovered"
    ACCOUNT_CUSTODY_CHANGED = "account:custody:changed"
    # legal matters
    LEGAL_MATTER_FILED = "legal:matter:filed"
    LEGAL_MATTER_EVALUATED = "legal:matter:evaluated"
    LEGAL_MATTER_DECIDED = "legal:matter:decided"
    LEGAL_MATTER_OVERRIDDEN = "legal:matter:overridden"
    LEGAL_MATTER_CLOSED = "legal:matter:closed"
    LEGAL_DECISION_PROPOSED = "legal:decision:proposed"
    """A decision that needs a second operator (four-eyes) was proposed."""
    LEGAL_DECISION_APPROVED = "legal:decision:approved"
    LEGAL_DECISION_APPROVAL_REFUSED = "legal:decision:approval-refused"
    LEGAL_HOLD_PLACED = "legal:hold:placed"
    LEGAL_HOLD_RELEASED = "legal:hold:released"
    LEGAL_PRODUCTION_EXECUTED = "legal:production:executed"
    LEGAL_NOTICE_SENT = "legal:notice:sent"
    LEGAL_NOTICE_REQUESTED = "legal:notice:requested"
    LEGAL_GAG_LIFTED = "legal:gag:lifted"
    LEGAL_GAG_EXTENDED = "legal:gag:extended"
    # the matter file (services/legal/matter_file.py, letters.py)
    LEGAL_CASE_NUMBER_SET = "legal:case-number:set"
    LEGAL_NOTE_ADDED = "legal:note:added"
    LEGAL_ATTACHMENT_ADDED = "legal:attachment:added"
    LEGAL_ATTACHMENT_OPENED = "legal:attachment:opened"
    LEGAL_MATTER_EXPORTED = "legal:matter:exported"
    LEGAL_LETTER_ISSUED = "legal:letter:issued"
    # non-disclosure orders
    LOG_COMMITMENT_REVEALED = "log:commitment:revealed"
    # the log itself
    LOG_RECOVERED = "log:tree:recovered"
    """The operator repaired a log the writer refused (``letterlock log recover``)."""


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. ``account`` and ``matter`` are references, not data."""

    type: EventType
    actor: str
    at: datetime
    account: str | None = None
    matter: str | None = None
    details: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    sealed_until: datetime | None = None
    """If set, the event is under a non-disclosure order until then (or indefinitely
    when ``indefinite`` is in details): it enters the log as a salted commitment."""


class AuditSink(Protocol):
    """Where services record events. Implementations must be durable on return."""

    async def record(self, event: AuditEvent) -> int:
        """Append ``event``; returns its index in the log."""
        ...


@runtime_checkable
class Revealer(Protocol):
    """A sink that keeps what it needs to reveal commitments when an order is lifted."""

    async def reveal_matter(self, matter: str, actor: str) -> list[int]:
        """Reveal every unrevealed commitment about ``matter``; returns the indexes of
        the reveal events."""
        ...

    async def sealed_matters(self) -> set[str]:
        """The matters that have commitments not yet revealed."""
        ...

    async def reseal_matter(self, matter: str, until: datetime | None) -> int:
        """The order over ``matter`` was extended: reveal its commitments at ``until``
        (None: only when lifted) instead of the old date; returns how many changed."""
        ...


@runtime_checkable
class EventFinder(Protocol):
    """A sink that can say what it holds, so that a writer that crashed between its
    own commit and the append can tell whether the append happened."""

    async def log_size(self) -> int:
        """How many records the log held at least (a lower bound for the next index)."""
        ...

    async def events_since(self, start: int) -> list[AuditEvent]:
        """The events recorded at index ``start`` or later, as they were given to
        :meth:`AuditSink.record`: clear events, and those under an order too (from
        the operator's sealed copy, or from their reveal)."""
        ...
