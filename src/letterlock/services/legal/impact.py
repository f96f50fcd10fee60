"""What-if over history: every stored matter decided again under another profile or
edited policies, and what would change.

Read-only: the matters are read from the legal store's rows (not through
``LegalService``, whose first use finishes crash work and so may write), decided with
the request and the facts their record holds (never the store's facts of today, never
the mail: nothing sealed is opened), at the time they were first evaluated (so dated
rules, e.g. the EU orders' date of application, apply as they did).

Policy is compared with policy: the recommendation then with the one now, finding by
finding (outcome and cited policies). What humans decided is shown beside it (the
decision in force, the last stage's for a matter decided in stages; an override is
marked), and so is what was actually handed over (every stage's package, from their
manifests), with what of it the new policies would have withheld. A matter is

- ``unchanged``: every finding's outcome is the same (cited policies may differ);
- ``disclose-more``: the new policies would hand over something the old ones did not
  recommend handing over, and withhold nothing they did;
- ``refuse-more``: the reverse;
- ``mixed``: both;
- ``changed``: outcomes differ but production does not (e.g. reject -> redirect-mlat);
- ``error``: its record cannot be decided again (missing or malformed data).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from letterlock.errors import LetterlockError
from letterlock.policy import (
    Decision,
    PolicyEngine,
    operator_for,
    parse_facts,
    parse_request,
)
from letterlock.services.legal.stages import Pair, disclosed, disclosed_so_far
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.contracts import ControlStore
from letterlock.storage.legal_sqlite import LegalStore, MatterRow

VERDICTS = ("unchanged", "disclose-more", "refuse-more", "mixed", "changed", "error")


@dataclass(frozen=True)
class FindingChange:
    """One (target, category) then and now."""

    target: str
    category: str
    outcome_then: str | None  # None: no finding then (or now)
    outcome_now: str | None
    policies_then: tuple[str, ...]
    policies_now: tuple[str, ...]
    decided: str | None = None  # the outcome humans decided, where it is not outcome_then

    @property
    def changed(self) -> bool:
        """Worth a line: the outcome or the cited policies differ, or humans decided
        otherwise than recommended."""
        return self.outcome_then != self.outcome_now or \
            self.policies_then != self.policies_now or self.decided is not None

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "category": self.category,
                "outcome": {"then": self.outcome_then, "now": self.outcome_now,
                            "decided": self.decided},
                "policies": {"then": list(self.policies_then),
                             "now": list(self.policies_now)}}


def _pairs_json(pairs: frozenset[Pair]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for target, category in sorted(pairs):
        out.setdefault(target, []).append(category)
    return out


@dataclass(frozen=True)
class MatterImpact:
    id: str
    jurisdiction: str  # the issuer's country
    instrument: str
    state: str
    verdict: str
    overridden: bool = False
    profile_then: str = ""
    transparency: tuple[str, str] = ("", "")  # then, now
    findings: tuple[FindingChange, ...] = ()
    produced_then: frozenset[Pair] = frozenset()  # what the recommendation then discloses
    produced_now: frozenset[Pair] = frozenset()
    handed_over: frozenset[Pair] = frozenset()  # what every stage's package disclosed
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "jurisdiction": self.jurisdiction,
            "instrument": self.instrument, "state": self.state, "verdict": self.verdict,
        }
        if self.error is not None:
            out["error"] = self.error
            return out
        out.update({
            "overridden": self.overridden,
            "profile_then": self.profile_then,
            "transparency": {"then": self.transparency[0], "now": self.transparency[1]},
            "findings": [f.to_json() for f in self.findings],
            "production": {"then": _pairs_json(self.produced_then),
                           "now": _pairs_json(self.produced_now),
                           "added": _pairs_json(self.produced_now - self.produced_then),
                           "withheld": _pairs_json(self.produced_then - self.produced_now),
                           "handed_over": _pairs_json(self.handed_over),
                           "handed_over_now_withheld": _pairs_json(
                               self.handed_over - self.produced_now)},
        })
        return out


@dataclass(frozen=True)
class ImpactReport:
    profile: str  # the profile decided under (its name, or the policy directory's)
    matters: tuple[MatterImpact, ...] = field(default=())

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(m.verdict for m in self.matters)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "matters": [m.to_json() for m in self.matters],
                "totals": {"matters": len(self.matters), **self.totals}}


def verdict_of(findings: tuple[FindingChange, ...], then: frozenset[Pair],
               now: frozenset[Pair]) -> str:
    more, less = bool(now - then), bool(then - now)
    if more and less:
        return "mixed"
    if more:
        return "disclose-more"
    if less:
        return "refuse-more"
    if any(f.outcome_then != f.outcome_now for f in findings):
        return "changed"
    return "unchanged"


def compare(then: Decision, now: Decision,
            decided: Decision | None = None) -> tuple[FindingChange, ...]:
    """Every (target, category) either decision has a finding for, in request order,
    with the decided outcome where it differs from ``then``'s."""
    old = {(t, c): f for t, c, f in then.findings()}
    made = {} if decided is None else {(t, c): f.outcome for t, c, f in decided.findings()}
    new = {(t, c): f for t, c, f in now.findings()}
    keys = list(old) + [k for k in new if k not in old]
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        was = a.outcome if a else None
        out.append(FindingChange(key[0], key[1], was, b.outcome if b else None,
                                 a.policies if a else (), b.policies if b else (),
                                 made.get(key) if made.get(key) != was else None))
    return tuple(out)


class LegalImpact:
    """Decides the stored matters again; changes nothing."""

    def __init__(self, store: LegalStore, control: ControlStore,
                 operator_country: str) -> None:
        self._store = store
        self._control = control
        self._operator_country = operator_country

    async def run(self, engine: PolicyEngine, actor: str,
                  label: str | None = None) -> ImpactReport:
        """Every matter decided again by ``engine`` (``label`` names its policies in
        the report: the profile's name by default); one log line says who ran it."""
        regions = frozenset(r.country for r in await self._control.list_regions())
        operator = operator_for(engine.jurisdictions, self._operator_country, regions)
        out = []
        for row in await self._store.list_matters():
            try:
                out.append(await self._one(row, engine, operator))
            except (LetterlockError, ValueError, KeyError, TypeError) as exc:
                out.append(self._error(row, str(exc) or type(exc).__name__))
        report = ImpactReport(label or engine.profile.name, tuple(out))
        totals = report.totals
        event(LogEvent.LEGAL_IMPACT_RUN, actor=actor, profile=report.profile,
              matters=len(out), change=len(out) - totals["unchanged"] - totals["error"],
              disclose_more=totals["disclose-more"] + totals["mixed"],
              refuse_more=totals["refuse-more"] + totals["mixed"], errors=totals["error"])
        return report

    @staticmethod
    def _error(row: MatterRow, message: str) -> MatterImpact:
        jurisdiction = instrument = "?"
        try:
            data: Mapping[str, Any] = json.loads(row.request)
            instrument = str(data.get("instrument", "?"))
            jurisdiction = str(data.get("issuer", {}).get("country", "?"))
        except (ValueError, AttributeError, TypeError):
            pass
        return MatterImpact(row.id, jurisdiction, instrument, row.state, "error",
                            error=message)

    async def _one(self, row: MatterRow, engine: PolicyEngine,
                   operator: Any) -> MatterImpact:
        if row.recommendation is None:
            return self._error(row, "never evaluated: no recommendation recorded")
        request = parse_request(json.loads(row.request))
        facts = parse_facts(json.loads(row.facts or "{}"))
        missing = [t for t in request.targets if t not in facts]
        if missing:
            return self._error(row, f"no recorded facts for {', '.join(missing)}")
        then = Decision.from_json(json.loads(row.recommendation))
        decided = None if row.decision is None else \
            Decision.from_json(json.loads(row.decision))
        # Decided again at the time it was first evaluated, with its recorded facts.
        now = engine.evaluate(request, facts, operator, then.evaluated_at)
        handed_over = await asyncio.to_thread(disclosed_so_far, row.package)
        produced_then, produced_now = disclosed(then), disclosed(now)
        findings = compare(then, now, decided)
        return MatterImpact(
            row.id, request.issuer.country, request.instrument, row.state,
            verdict_of(findings, produced_then, produced_now),
            overridden=row.overridden, profile_then=then.profile,
            transparency=(then.transparency, now.transparency), findings=findings,
            produced_then=produced_then, produced_now=produced_now,
            handed_over=handed_over)


def describe(report: ImpactReport) -> list[str]:
    """The report as plain lines (for a terminal or a document)."""
    lines = [f"impact of profile {report.profile} on {len(report.matters)} matters"]
    for m in report.matters:
        head = f"{m.id}  {m.jurisdiction} {m.instrument}  ({m.state}): {m.verdict}"
        if m.error is not None:
            lines.append(f"{head}: {m.error}")
            continue
        lines.append(head + (" [recommendation overridden]" if m.overridden else ""))
        lines.append(f"  transparency {m.transparency[0]} -> {m.transparency[1]}"
                     f"  (then under {m.profile_then})")
        for f in m.findings:
            if not f.changed:
                continue
            decided = f" (decided: {f.decided})" if f.decided else ""
            lines.append(f"  {f.target} {f.category}: {f.outcome_then or '-'} -> "
                         f"{f.outcome_now or '-'}{decided}")
            lines.append(f"    policies {' '.join(f.policies_then) or '-'} -> "
                         f"{' '.join(f.policies_now) or '-'}")
        for label, pairs in (("would also hand over", m.produced_now - m.produced_then),
                             ("would withhold", m.produced_then - m.produced_now),
                             ("handed over, now withheld", m.handed_over - m.produced_now)):
            for target, cats in _pairs_json(pairs).items():
                lines.append(f"  {label}: {target} {', '.join(cats)}")
    totals = report.totals
    lines.append("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return lines


__all__ = ["VERDICTS", "FindingChange", "ImpactReport", "LegalImpact", "MatterImpact",
           "compare", "describe", "verdict_of"]
