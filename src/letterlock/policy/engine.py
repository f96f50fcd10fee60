"""Evaluate a legal request against a policy profile.

The engine turns the request, the account facts and the jurisdiction data into Cedar
entities (the issuer, each account) and a context per (target, category), asks Cedar
which policies match, and assembles LEGAL.md's decision:

- among matching **rows**, the lowest row decides the outcome (within a row, the
  policy written first); every matching row is cited, the deciding one first; a
  ``@fallback`` row is cited only when nothing else matched; a matching
  ``@conclusive`` row ends the table: rows after it are not cited (they presuppose
  what it denies, e.g. that the account exists and holds data somewhere);
- matching **flag** rules add flags (restricted to ``@outcomes`` when given);
- the user-notice rule comes from the deciding rows (``@notice``) or else from the
  first matching **notice** rule;
- deadlines come from the deciding rows' ``@deadlines``, with lengths from the
  instrument data, plus the gag's expiry as the user-notice date.

Evaluation is pure and deterministic for the same inputs and ``at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cedarpy

from letterlock.errors import ConfigError
from letterlock.policy.decision import (
    Deadline,
    Decision,
    Finding,
    UserNotice,
    transparency_bucket,
)
from letterlock.policy.e_evidence import enforcing_state
from letterlock.policy.jurisdiction import Jurisdictions, Length, Operator
from letterlock.policy.model import AccountFacts, LegalRequest
from letterlock.policy.rules import Profile, Rule

NON_SPECIFIC_TARGET = "*"
"""Key under which a request naming no account at all is decided."""

_ISSUER = {"type": "Legal::Issuer", "id": "issuer"}


@dataclass(frozen=True)
class _Evaluation:
    target: str
    category: str
    rows: tuple[Rule, ...]  # matching rows, in precedence order
    flags: tuple[Rule, ...]
    notices: tuple[Rule, ...]


class PolicyEngine:
    """A profile plus the jurisdiction data it reasons with. Immutable; share freely."""

    def __init__(self, profile: Profile, jurisdictions: Jurisdictions) -> None:
        self.profile = profile
        self.jurisdictions = jurisdictions

    # -- Cedar inputs ------------------------------------------------------------------

    def _issuer_entity(self, request: LegalRequest, operator: Operator) -> dict[str, Any]:
        j = self.jurisdictions
        country = j.acting_country(request, operator)
        return {
            "uid": _ISSUER,
            "attrs": {
                "country": country,
                "requesting_country": request.issuer.country,
                "authority": request.issuer.authority,
                "verified": request.issuer.verified,
                "judge_validated": request.issuer.judge_validated,
                "in_eu": country in j.eu,
                "in_e_evidence": country in j.e_evidence,
                "voluntary_disclosure": country in j.voluntary_disclosure,
            },
            "parents": [],
        }

    def _account_entity(self, target: str, facts: AccountFacts | None) -> dict[str, Any]:
        location = (facts.location if facts else None) or ""
        return {
            "uid": {"type": "Legal::Account", "id": target},
            "attrs": {
                "known": facts is not None,
                "exists": True if facts is None else facts.exists,
                "location": location,
                "location_in_eu": location in self.jurisdictions.eu,
                "residence": (facts.residence if facts else None) or "",
                "us_person": bool(facts and facts.us_person),
                "hosted_tenant": bool(facts and facts.hosted_tenant),
                "conflict_with": list(facts.conflict_with) if facts else [],
                "key_custody": facts.key_custody if facts else "sealed",
            },
            "parents": [],
        }

    def _context(self, request: LegalRequest, facts: AccountFacts | None, category: str,
                 operator: Operator, at: datetime, gag: str) -> dict[str, Any]:
        j = self.jurisdictions
        on = at.date()
        country = j.acting_country(request, operator)
        agreement = j.agreement_for(country, operator.country, request.instrument, category, on)
        location = (facts.location if facts else None) or ""
        offence = request.offence
        enforcing = enforcing_state(j, request, facts, category, at)
        return {
            "instrument": request.instrument,
            "category": category,
            "reach": sorted(j.reach(request.instrument, request.action)),
            "instrument_applicable": j.applicable(request.instrument, country, on),
            "specific_target": request.specific,
            "emergency": request.emergency,
            "gag": gag,
            "renewal": request.renewal_of_served_at is not None,
            "offence_years": offence.max_penalty_years if offence else 0,
            "offence_listed": offence.listed if offence else False,
            "offence_country": offence.country if offence else "",
            "operator_country": operator.country,
            "operator_in_eu": operator.country in j.eu,
            "operator_in_e_evidence": operator.country in j.e_evidence,
            "operator_established_in_issuer_country": country in operator.establishments,
            "issuer_agreement": agreement is not None,
            "target_protected": bool(agreement and facts
                                     and agreement.protects(country, facts)),
            "location_agreement": bool(location)
            and j.agreement_between(country, location, on),
            "enforcing_state_notified": enforcing.notified,
            "enforcing_state": enforcing.state,
            "enforcing_state_window_over": enforcing.window_over,
        }

    def _gag(self, request: LegalRequest) -> str:
        gag = self.jurisdictions.effective_gag(request)
        return "none" if gag is None else gag.kind

    # -- evaluation --------------------------------------------------------------------

    def _evaluate_all(self, request: LegalRequest, facts: Mapping[str, AccountFacts],
                      operator: Operator, at: datetime) -> list[_Evaluation]:
        targets = request.targets or (NON_SPECIFIC_TARGET,)
        gag = self._gag(request)
        entities = [self._issuer_entity(request, operator)]
        entities += [self._account_entity(t, facts.get(t)) for t in targets]
        action = {"type": "Legal::Action", "id": request.action}
        pairs = [(t, c) for t in targets for c in request.categories]
        queries = [
            {
                "principal": _ISSUER,
                "action": action,
                "resource": {"type": "Legal::Account", "id": t},
                "context": self._context(request, facts.get(t), c, operator, at, gag),
            }
            for t, c in pairs
        ]
        results = cedarpy.is_authorized_batch(queries, self.profile.policy_set, entities,
                                              self.profile.schema)
        out: list[_Evaluation] = []
        rules = self.profile.rules
        for (target, category), result in zip(pairs, results, strict=True):
            diagnostics = result.diagnostics
            if diagnostics.errors:
                raise ConfigError(f"policy profile {self.profile.name}: evaluation failed: "
                                  f"{'; '.join(str(e) for e in diagnostics.errors)}")
            names = diagnostics.id_annotations_by_reason
            matched = sorted((rules[names[r]] for r in diagnostics.reasons if r in names),
                             key=lambda r: (r.row or 0, r.order))
            out.append(_Evaluation(
                target=target,
                category=category,
                rows=_up_to_conclusive([r for r in matched if r.kind == "row"]),
                flags=tuple(sorted((r for r in matched if r.kind == "flag"),
                                   key=lambda r: r.order)),
                notices=tuple(sorted((r for r in matched if r.kind == "notice"),
                                     key=lambda r: r.order)),
            ))
        return out

    def _finding(self, ev: _Evaluation) -> tuple[Finding, Rule | None]:
        decisive = [r for r in ev.rows if not r.fallback] or list(ev.rows)
        if not decisive:
            return Finding("escalate", (), (), ()), None
        deciding = decisive[0]
        outcome = deciding.outcome or "escalate"
        flags: list[str] = []
        cited = [r.id for r in decisive]
        for rule in ev.flags:
            if rule.flag and (not rule.outcomes or outcome in rule.outcomes) \
                    and rule.flag not in flags:
                flags.append(rule.flag)
                cited.append(rule.id)
        return Finding(outcome, deciding.reasons, tuple(cited), tuple(flags)), deciding

    def _deadlines(self, request: LegalRequest, rule: Rule) -> list[Deadline]:
        out: list[Deadline] = []
        for spec in rule.deadlines:
            length: Length | None
            if spec.days is not None or spec.hours is not None:
                length = Length(days=spec.days or 0, hours=spec.hours or 0)
            else:
                length = self.jurisdictions.deadline_length(request.instrument, spec.kind)
            if length is None:
                raise ConfigError(f"policy {rule.id} ({rule.file}:{rule.line}): no length "
                                  f"for deadline {spec.kind!r} of instrument "
                                  f"{request.instrument!r} in the jurisdiction data")
            renewal_of = request.renewal_of_served_at if length.renewal_days else None
            out.append(Deadline(spec.kind, length.due(request.served_at,
                                                      emergency=request.emergency,
                                                      renewal_of=renewal_of)))
        return out

    def evaluate(self, request: LegalRequest, facts: Mapping[str, AccountFacts],
                 operator: Operator, at: datetime) -> Decision:
        """The recommended decision for ``request`` as the law stands on ``at``."""
        evaluations = self._evaluate_all(request, facts, operator, at)
        by_target: dict[str, list[tuple[str, Finding]]] = {}
        deciding_rules: list[Rule] = []
        deadlines: set[Deadline] = set()
        outcomes: list[tuple[str, str]] = []
        for ev in evaluations:
            finding, deciding = self._finding(ev)
            by_target.setdefault(ev.target, []).append((ev.category, finding))
            outcomes.append((ev.category, finding.outcome))
            if deciding is not None:
                deciding_rules.append(deciding)
                deadlines.update(self._deadlines(request, deciding))

        notice_rules = sorted((r for r in deciding_rules if r.notice),
                              key=lambda r: (r.row or 0, r.order))
        if not notice_rules:
            notice_rules = sorted({r.id: r for ev in evaluations for r in ev.notices}.values(),
                                  key=lambda r: r.order)
        when = notice_rules[0].notice if notice_rules else "before-disclosure"
        assert when is not None
        not_before = None
        gag = self.jurisdictions.effective_gag(request)
        if when == "at-gag-expiry" and gag is not None and gag.until:
            not_before = gag.until
            deadlines.add(Deadline("user-notice", not_before))

        return Decision(
            profile=self.profile.name,
            evaluated_at=at,
            targets=tuple((t, tuple(cats)) for t, cats in by_target.items()),
            deadlines=tuple(sorted(deadlines, key=lambda d: (d.due, d.kind))),
            user_notice=UserNotice(when, not_before),
            transparency=transparency_bucket(outcomes),
        )


def _up_to_conclusive(rows: list[Rule]) -> tuple[Rule, ...]:
    """Matching rows in precedence order, cut after the first ``@conclusive`` one."""
    for i, rule in enumerate(rows):
        if rule.conclusive:
            return tuple(rows[:i + 1])
    return tuple(rows)


def default_at(request: LegalRequest) -> datetime:
    """The evaluation date when none is given: when the request was served, so that a
    what-if evaluation of the same file always gives the same answer."""
    return request.served_at


def operator_for(jurisdictions: Jurisdictions, country: str | None,
                 regions: frozenset[str] = frozenset()) -> Operator:
    """The operator seen by the policy: its seat (default from the data) and its
    establishments: the data's, its seat, and the countries of its regions."""
    default = jurisdictions.default_operator
    seat = country or default.country
    return Operator(seat, default.establishments | {seat} | regions)
