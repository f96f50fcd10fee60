"""What the outbound queue knows of one message: its envelope, each recipient's
state and last answer, and which notices the sender has had. Pure values, stored
sealed as a queue entry's ``.env`` file (services/mail/outbound.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

PENDING, SENT, FAILED = "pending", "sent", "failed"
ENTRY_ID = re.compile(r"[0-9a-f]{24}")


@dataclass(frozen=True)
class RecipientState:
    address: str
    state: str = PENDING
    status: str = ""
    diagnostic: str = ""
    remote: str = ""
    notified: bool = False
    """A bounce for this (failed) recipient has been delivered to the sender."""


@dataclass(frozen=True)
class QueueEntry:
    id: str
    region: str
    account: str
    """Address of the submitting account (where bounces go)."""
    mail_from: str
    created: datetime
    attempts: int
    next_attempt: datetime
    recipients: tuple[RecipientState, ...]
    queue_id: str = ""
    """The id the message was accepted under (the Received field, the log lines)."""
    held: bool = False
    """Put on hold by the operator (`letterlock queue hold`): no attempt until
    released (`letterlock queue retry`)."""
    delay_notified: bool = False
    """The delayed-delivery notice (``smtp.delay_notice_s``) was sent, or needs not
    be (null sender, a report): it goes once per message."""

    def to_json(self) -> bytes:
        doc = {"v": 1, "id": self.id, "region": self.region, "account": self.account,
               "mail_from": self.mail_from, "created": self.created.isoformat(),
               "attempts": self.attempts, "next_attempt": self.next_attempt.isoformat(),
               "recipients": [r.__dict__ for r in self.recipients],
               "queue_id": self.queue_id, "held": self.held,
               "delay_notified": self.delay_notified}
        return json.dumps(doc).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> QueueEntry:
        doc = json.loads(data)
        return cls(doc["id"], doc["region"], doc["account"], doc["mail_from"],
                   datetime.fromisoformat(doc["created"]), int(doc["attempts"]),
                   datetime.fromisoformat(doc["next_attempt"]),
                   tuple(RecipientState(**r) for r in doc["recipients"]),
                   str(doc.get("queue_id", "")), bool(doc.get("held", False)),
                   bool(doc.get("delay_notified", False)))

    @property
    def pending(self) -> list[str]:
        return [r.address for r in self.recipients if r.state == PENDING]
