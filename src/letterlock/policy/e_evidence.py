"""The enforcing state's part in a European Production Order, as facts the policies
read (Regulation (EU) 2023/1543, applicable from 18 Aug 2026).

An order for traffic or content data (not data asked for only to identify the user)
is notified by the issuing authority to the enforcing state (art. 8(1)), unless the
offence and the person whose data is sought are both in the issuing state (art.
8(2)). The enforcing state then has 10 days (96 hours in an emergency) to raise a
ground for refusal (art. 12(1)); an ordinary order's data goes out when that window
ends without one, or sooner once the state confirms it raises none (art. 10(3)); an
emergency order's data goes out within 8 hours regardless (art. 10(4)).

What the state answered is a fact about the target (``enforcing_state`` in the
facts); an answer given after the evaluation date is not known yet at that date. This
module only states the facts (notified or not, where the answer stands, whether the
window is over); the Cedar rows decide what follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from letterlock.policy.jurisdiction import Jurisdictions
from letterlock.policy.model import AccountFacts, LegalRequest

WINDOW = "enforcing-state-objection"
"""The deadline kind whose length (instruments.json) is the enforcing state's window."""

STATES = ("not-notified", "pending", "no-grounds", "refused", "refused-late")
"""What ``context.enforcing_state`` can say:

- ``not-notified``: the order is not one the enforcing state is told of;
- ``pending``: notified, no answer known at the evaluation date;
- ``no-grounds``: the state confirmed it raises no ground for refusal;
- ``refused``: it raised one or more grounds within its window;
- ``refused-late``: it raised grounds after its window had ended."""


@dataclass(frozen=True)
class EnforcingState:
    notified: bool
    state: str
    window_over: bool
    window_ends: datetime | None


def notified(j: Jurisdictions, request: LegalRequest, facts: AccountFacts | None,
             category: str) -> bool:
    """Whether the issuing authority must notify the enforcing state of this order for
    this category and person (art. 8)."""
    rules = j.e_evidence_rules
    if request.instrument not in rules.notified_instruments \
            or category not in rules.notified_categories:
        return False
    issuing = request.issuer.country
    offence_here = request.offence is not None and request.offence.country == issuing
    resides_here = facts is not None and facts.residence == issuing
    return not (offence_here and resides_here)


def window_end(j: Jurisdictions, request: LegalRequest) -> datetime | None:
    """When the enforcing state's window ends (None: the instrument has none)."""
    length = j.deadline_length(request.instrument, WINDOW)
    if length is None:
        return None
    return length.due(request.served_at, emergency=request.emergency)


def enforcing_state(j: Jurisdictions, request: LegalRequest, facts: AccountFacts | None,
                    category: str, at: datetime) -> EnforcingState:
    """Where the enforcing state stands for (request, target, category) on ``at``."""
    if not notified(j, request, facts, category):
        return EnforcingState(False, "not-notified", False, None)
    ends = window_end(j, request)
    over = ends is not None and at >= ends
    answer = facts.enforcing_state if facts is not None else None
    if answer is None or answer.answered_at > at:
        return EnforcingState(True, "pending", over, ends)
    if not answer.refused:
        return EnforcingState(True, "no-grounds", over, ends)
    late = ends is not None and answer.answered_at > ends
    return EnforcingState(True, "refused-late" if late else "refused", over, ends)
