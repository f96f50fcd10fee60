"""A legal matter as its readers see it (the CLI, the HTTP API, the console): the
request, the facts, the recommendation and decision, holds, notices and the status of
each deadline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from letterlock.policy import AccountFacts, Decision, LegalRequest, format_time
from letterlock.services.legal.deadlines import DeadlineStatus, next_open
from letterlock.storage.legal_sqlite import HoldRow, NoticeRow


@dataclass(frozen=True)
class Matter:
    id: str
    state: str
    filed_at: datetime
    filed_by: str
    request: LegalRequest
    facts: Mapping[str, AccountFacts]
    recommendation: Decision
    decision: Decision | None
    overridden: bool
    justification: str | None
    decided_by: str | None
    package: str | None
    closed_at: datetime | None
    holds: tuple[HoldRow, ...] = ()
    notices: tuple[NoticeRow, ...] = ()
    deadlines: tuple[DeadlineStatus, ...] = ()
    """Every deadline of the decision (or recommendation), met or not."""

    @property
    def open(self) -> bool:
        return self.state != "closed"

    @property
    def next_due(self) -> datetime | None:
        """The earliest deadline still to be met."""
        return next_open(self.deadlines)

    @property
    def overdue(self) -> bool:
        """A deadline still to be met has passed."""
        return any(d.overdue for d in self.deadlines)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "filed_at": format_time(self.filed_at),
            "filed_by": self.filed_by,
            "request": self.request.to_json(),
            "facts": {a: f.to_json() for a, f in self.facts.items()},
            "recommendation": self.recommendation.to_json(),
            "decision": None if self.decision is None else self.decision.to_json(),
            "overridden": self.overridden,
            "justification": self.justification,
            "decided_by": self.decided_by,
            "package": self.package,
            "next_due": None if self.next_due is None else format_time(self.next_due),
            "overdue": self.overdue,
            "deadlines": [d.to_json() for d in self.deadlines],
            "closed_at": None if self.closed_at is None else format_time(self.closed_at),
            "holds": [{"address": h.address, "region": h.region,
                       "placed_at": format_time(h.placed_at),
                       "expires_at": format_time(h.expires_at),
                       "released_at": None if h.released_at is None
                       else format_time(h.released_at)} for h in self.holds],
            "notices": [{"address": n.address,
                         "due_at": None if n.due_at is None else format_time(n.due_at),
                         "sent_at": None if n.sent_at is None else format_time(n.sent_at)}
                        for n in self.notices],
        }


@dataclass(frozen=True)
class TickReport:
    notices_sent: int
    holds_released: int
