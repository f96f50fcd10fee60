"""Legal-request policy: a pure library (no I/O beyond reading its own policy and
data files), used by the legal service and the ``letterlock legal`` commands.

    request JSON + facts JSON + profile + jurisdiction data + date  ->  Decision

Typical use::

    engine = PolicyEngine(load_profile("location-2016"), load_jurisdictions())
    decision = engine.evaluate(parse_request(req), parse_facts(facts),
                               operator_for(engine.jurisdictions, "US"), at)
    decision.to_json()
"""

from letterlock.policy.decision import Deadline, Decision, Finding, UserNotice
from letterlock.policy.engine import NON_SPECIFIC_TARGET, PolicyEngine, default_at, operator_for
from letterlock.policy.jurisdiction import Jurisdictions, Operator, load_jurisdictions
from letterlock.policy.model import (
    AccountFacts,
    AssertedFacts,
    DateRange,
    LegalRequest,
    format_time,
    parse_account_facts,
    parse_asserted_facts,
    parse_facts,
    parse_request,
    parse_time,
)
from letterlock.policy.rules import (
    SHIPPED_PROFILES,
    Problem,
    Profile,
    load_profile,
    validate,
)

__all__ = [
    "NON_SPECIFIC_TARGET",
    "SHIPPED_PROFILES",
    "AccountFacts",
    "AssertedFacts",
    "DateRange",
    "Deadline",
    "Decision",
    "Finding",
    "Jurisdictions",
    "LegalRequest",
    "Operator",
    "PolicyEngine",
    "Problem",
    "Profile",
    "UserNotice",
    "default_at",
    "format_time",
    "load_jurisdictions",
    "load_profile",
    "operator_for",
    "parse_account_facts",
    "parse_asserted_facts",
    "parse_facts",
    "parse_request",
    "parse_time",
    "validate",
]
