"""The stages of a legal matter.

A decision may leave findings open: waiting for an enforcing state's objection
(``hold-enforcing-state``), a challenge in court, an escalation to counsel, or a
question to the issuer. The matter is then ``waiting`` and is decided again (a
follow-up decision overrides the open findings of the decision before it). Each stage
hands over only what no earlier stage did: its package is a new one
(``packages/<matter>``, then ``<matter>-stage2``, ...), whose manifest records what was
disclosed before it, so the next stage knows (also after a crash). While a matter
waits, the traffic and content it may yet hand over are preserved by a hold that ends
30 days after the decision's last deadline, or when a final decision is executed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from letterlock.errors import InvalidInput
from letterlock.policy import Decision, Finding
from letterlock.policy.decision import transparency_bucket

DECIDABLE = ("evaluated", "waiting")
"""States a decision can be made in: evaluated, or waiting for a follow-up."""
WAITING_OUTCOMES = frozenset({"hold-enforcing-state", "challenge", "escalate", "query-issuer"})
"""Outcomes that are not final: the matter waits, and is decided again."""
PRESERVED_WHILE_WAITING = frozenset({"traffic", "content"})
"""Categories kept by a hold while their finding waits (what could still go out and
could be deleted meanwhile: subscriber data is the account itself)."""
WAITING_HOLD_MARGIN = timedelta(days=30)
WAITING_HOLD_DEFAULT = timedelta(days=90)

Pair = tuple[str, str]


def is_waiting(decision: Decision) -> bool:
    return any(f.outcome in WAITING_OUTCOMES for _, _, f in decision.findings())


def disclosed(decision: Decision) -> frozenset[Pair]:
    """The (target, category) pairs ``decision`` discloses."""
    return frozenset((t, c) for t, c, f in decision.findings() if f.outcome == "disclose")


def waiting_pairs(decision: Decision) -> frozenset[Pair]:
    """The (target, category) pairs a hold keeps while ``decision`` waits."""
    return frozenset((t, c) for t, c, f in decision.findings()
                     if f.outcome in WAITING_OUTCOMES and c in PRESERVED_WHILE_WAITING)


def disclosed_so_far(package: str | None) -> frozenset[Pair]:
    """What the stages up to the one that wrote ``package`` handed over (blocking: it
    reads the package's manifest)."""
    if package is None:
        return frozenset()
    try:
        manifest = json.loads((Path(package) / "manifest.json").read_bytes())
        earlier = {(str(t), str(c)) for t, c in manifest.get("disclosed_earlier", [])}
        return frozenset(earlier | disclosed(Decision.from_json(manifest["decision"])))
    except (OSError, ValueError, KeyError, TypeError, InvalidInput):
        return frozenset()


def stage_name(matter_id: str, package: str | None) -> str:
    """The name of the next stage's package: the matter's id, then ``-stage2``, ..."""
    if package is None:
        return matter_id
    found = re.search(r"-stage(\d+)$", Path(package).name)
    return f"{matter_id}-stage{int(found.group(1)) + 1 if found else 2}"


def waiting_hold_expiry(decision: Decision, now: datetime) -> datetime:
    """When a hold placed while ``decision`` waits ends (unless released earlier)."""
    last = max((d.due for d in decision.deadlines), default=None)
    if last is None or last < now:
        return now + WAITING_HOLD_DEFAULT
    return last + WAITING_HOLD_MARGIN


def follow_up_base(recommendation: Decision, previous: Decision | None) -> Decision:
    """What a decision starts from: the recommendation, or for a follow-up decision
    the decision before it."""
    return previous if previous is not None else recommendation


def categories_of(pairs: Collection[Pair], target: str) -> list[str]:
    return sorted(c for t, c in pairs if t == target)


def override(decision: Decision, outcome: str, actor: str, only_targets: Sequence[str] = (),
              only_categories: Sequence[str] = ()) -> Decision:
    """``decision`` with ``outcome`` for every finding, or for the findings of
    ``only_targets`` / ``only_categories``. Raises InvalidInput for a target or
    category the decision has no finding for."""
    wanted_targets = {t.strip().lower() for t in only_targets}
    wanted_categories = set(only_categories)
    known_targets = {t for t, _ in decision.targets}
    known_categories = {c for _, cats in decision.targets for c, _ in cats}
    if wanted_targets - known_targets:
        raise InvalidInput(f"no finding for {', '.join(sorted(wanted_targets - known_targets))}"
                           f" (targets: {', '.join(sorted(known_targets))})")
    if wanted_categories - known_categories:
        raise InvalidInput(f"no finding for category "
                           f"{', '.join(sorted(wanted_categories - known_categories))} "
                           f"(categories: {', '.join(sorted(known_categories))})")

    def chosen(target: str, category: str) -> bool:
        return (not wanted_targets or target in wanted_targets) and \
            (not wanted_categories or category in wanted_categories)

    targets = tuple(
        (t, tuple((c, Finding(outcome, (), (f"override:{actor}", *f.policies), f.flags)
                   if chosen(t, c) else f)
                  for c, f in cats))
        for t, cats in decision.targets)
    bucket = transparency_bucket([(c, f.outcome) for _, cats in targets for c, f in cats])
    return replace(decision, targets=targets, transparency=bucket)


def earliest(decision: Decision, now: datetime) -> datetime | None:
    dues = [d.due for d in decision.deadlines if d.due >= now - timedelta(days=365 * 10)]
    return min(dues) if dues else None
