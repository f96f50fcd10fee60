"""A legal matter as its readers see it (the CLI, the HTTP API, the console): the
request, the facts, the recommendation and decision, holds, notices and the status of
each deadline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from letterlock.policy import AccountFacts, Decision, LegalRequest, format_time, parse_time
from letterlock.services.legal.deadlines import DeadlineStatus, next_open
from letterlock.storage.legal_sqlite import HoldRow, NoticeRow


@dataclass(frozen=True)
class Proposal:
    """A decision waiting for (or given) a second operator's approval (four-eyes)."""
    id: int
    decision: Decision
    proposed_by: str
    proposed_at: datetime
    was: str
    """The state the matter was decided in (evaluated, waiting): where a refusal
    sends it back."""
    needs: tuple[str, ...]
    """Why it needs approval: content, override, flagged."""
    justification: str | None = None
    override: tuple[tuple[str, str], ...] = ()
    """The override's outcome, justification and scope (empty: recommendation accepted)."""
    outcome: str | None = None
    """None while it waits; approved or refused."""
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"decision": self.decision.to_json(), "proposed_by": self.proposed_by,
                "proposed_at": format_time(self.proposed_at), "was": self.was,
                "needs": list(self.needs), "justification": self.justification,
                "override": dict(self.override), "outcome": self.outcome,
                "resolved_by": self.resolved_by,
                "resolved_at": None if self.resolved_at is None
                else format_time(self.resolved_at),
                "reason": self.reason}

    @staticmethod
    def from_json(pid: int, data: dict[str, Any]) -> Proposal:
        return Proposal(
            pid, Decision.from_json(data["decision"]), data["proposed_by"],
            parse_time(data["proposed_at"], "proposed_at"), data["was"],
            tuple(data["needs"]), data.get("justification"),
            tuple((str(k), str(v)) for k, v in data.get("override", {}).items()),
            data.get("outcome"), data.get("resolved_by"),
            None if data.get("resolved_at") is None
            else parse_time(data["resolved_at"], "resolved_at"),
            data.get("reason"))


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
    proposal: Proposal | None = None
    """The latest decision put to a second operator (four-eyes), if any."""

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
            "proposal": None if self.proposal is None else self.proposal.to_json(),
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
