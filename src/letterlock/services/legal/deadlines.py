"""Which of a matter's deadlines are still to be met, and which are overdue.

The decision (or, before one, the recommendation) names its deadlines; whether one
is met follows from where the matter stands:

- ``production``: met once a decision was executed;
- ``challenge``: met once decided, unless a finding was decided ``challenge`` (the
  challenge itself is then still to be filed);
- ``preservation-expiry``: met once every hold of the matter is released (before the
  decision, the hold still has to be placed);
- ``user-notice``: met once every notice was sent (or none is to be sent);
- ``enforcing-state-objection``: a period to wait out, met when it has passed (never
  overdue);
- any other kind: met once decided.

A closed matter has no deadline left. An open deadline whose time has passed is
overdue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from letterlock.policy import Decision, format_time
from letterlock.storage.legal_sqlite import HoldRow, NoticeRow

EXECUTED = frozenset({"executed", "notified", "closed"})


@dataclass(frozen=True)
class DeadlineStatus:
    kind: str
    due: datetime
    done: bool
    overdue: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "due": format_time(self.due), "done": self.done,
                "overdue": self.overdue}


def deadline_status(state: str, decision: Decision | None, recommendation: Decision,
                    holds: Sequence[HoldRow], notices: Sequence[NoticeRow],
                    now: datetime) -> tuple[DeadlineStatus, ...]:
    """Every deadline of the matter, met or not, in order of date."""
    decided = decision is not None and state in EXECUTED
    current = decision if decision is not None else recommendation
    challenged = decision is not None and any(
        f.outcome == "challenge" for _, _, f in decision.findings())
    out = []
    for deadline in current.deadlines:
        kind = deadline.kind
        if state == "closed":
            done = True
        elif kind == "challenge":
            done = decided and not challenged
        elif kind == "preservation-expiry":
            done = decided and all(h.released_at is not None for h in holds)
        elif kind == "user-notice":
            done = decided and all(n.sent_at is not None for n in notices)
        elif kind == "enforcing-state-objection":
            done = deadline.due <= now
        else:
            done = decided
        out.append(DeadlineStatus(kind, deadline.due, done,
                                  not done and deadline.due < now))
    return tuple(sorted(out, key=lambda d: (d.due, d.kind)))


def next_open(deadlines: Sequence[DeadlineStatus]) -> datetime | None:
    """The earliest deadline still to be met."""
    return min((d.due for d in deadlines if not d.done), default=None)
