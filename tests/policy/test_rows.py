"""One case (at least) per row of LEGAL.md's default-policy table, in each profile,
through the API and the CLI. Each case names the policy that must decide, so a policy
edited or renamed in the shipped files fails here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from .harness import C18, L16, Decide, make_facts, make_request, outcome

EPOC_DATE = {"received_at": "2026-09-01T09:00:00Z", "served_at": "2026-09-01T09:00:00Z"}
IT_COURT = {"country": "IT", "authority": "court", "name": "Tribunale di Milano"}


@dataclass(frozen=True)
class Case:
    row: int
    name: str
    request: dict[str, Any]
    facts: dict[str, Any] | None
    category: str
    outcome: dict[str, str]  # profile -> outcome ("*" for both)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    policy: str = ""  # suffix after "L16-"/"C18-" of the deciding policy
    policies: dict[str, str] = field(default_factory=dict)  # per-profile override
    operator: str = "US"
    target: str = "bob@example.test"
    flags: tuple[str, ...] | None = None
    deadlines: tuple[dict[str, str], ...] = ()
    notice: str | None = None
    at: str | None = None

    def expected(self, profile: str) -> tuple[str, list[str] | None, str]:
        prefix = "L16" if profile == L16 else "C18"
        out = self.outcome.get(profile, self.outcome.get("*", ""))
        reasons = self.reasons.get(profile, self.reasons.get("*"))
        policy = self.policies.get(profile, self.policy)
        return out, reasons, f"{prefix}-{policy}"


US_BOB = make_facts(bob={"location": "US"})

CASES = [
    Case(1, "unverified", make_request(issuer={"verified": False}), US_BOB, "content",
         {"*": "reject"}, {"*": ["R08"]}, "01-unverified"),
    Case(2, "empty-targets", make_request(targets=[]), None, "content",
         {"*": "reject"}, {"*": ["R07"]}, "02-not-specific", target="*"),
    Case(2, "query-selector", make_request(selector="query"), US_BOB, "content",
         {"*": "reject"}, {"*": ["R07"]}, "02-not-specific"),
    Case(3, "intercept", make_request(action="intercept"), US_BOB, "content",
         {"*": "escalate"}, {"*": ["R16"]}, "03-intercept"),
    Case(4, "no-account", make_request(), make_facts(bob={"exists": False, "location": None}),
         "content", {"*": "no-data"}, {"*": ["R17"]}, "04-no-account"),
    Case(4, "facts-unknown", make_request(), None, "content",
         {"*": "escalate"}, {"*": []}, "04-facts-unknown"),
    Case(5, "nsl-cannot-reach-content", make_request(instrument="us-nsl"), US_BOB, "content",
         {"*": "reject"}, {"*": ["R03"]}, "05-beyond-reach",
         flags=("challenge-gag", "national-security-band")),
    Case(5, "preservation-order-cannot-produce", make_request(instrument="us-preservation"),
         US_BOB, "content", {"*": "reject"}, {"*": ["R03"]}, "05-beyond-reach"),
    Case(6, "epoc-before-2026-08-18",
         make_request(issuer=IT_COURT, instrument="eu-epoc", offence={"country": "IT"}),
         make_facts(bob={"location": "IE"}), "content", {"*": "reject"}, {"*": ["R13"]},
         "06-not-yet-applicable", operator="IE"),
    Case(6, "epoc-from-denmark",
         make_request(issuer={"country": "DK"}, instrument="eu-epoc", **EPOC_DATE),
         make_facts(bob={"location": "IE"}), "content", {"*": "reject"}, {"*": ["R13"]},
         "06-not-yet-applicable", operator="IE"),
    Case(7, "epoc-content-by-prosecutor",
         make_request(issuer={"country": "IT", "authority": "prosecutor",
                              "judge_validated": False},
                      instrument="eu-epoc", offence={"country": "IT"}, **EPOC_DATE),
         make_facts(bob={"location": "IE"}), "content", {"*": "reject"}, {"*": ["R15"]},
         "07-epoc-needs-judge", operator="IE"),
    Case(8, "epoc-minor-offence",
         make_request(issuer=IT_COURT, instrument="eu-epoc",
                      offence={"country": "IT", "max_penalty_years": 2},
                      categories=["traffic"], **EPOC_DATE),
         make_facts(bob={"location": "IE"}), "traffic", {"*": "query-issuer"},
         {"*": ["R12"]}, "08-epoc-offence-threshold", operator="IE"),
    Case(9, "us-preservation",
         make_request(instrument="us-preservation", action="preserve"),
         make_facts(bob={"location": "IE"}), "content", {"*": "preserve"}, {"*": []},
         "09-preserve", deadlines=({"kind": "preservation-expiry",
                                    "due": "2025-04-15T09:00:00Z"},), notice="none"),
    Case(9, "us-preservation-renewal",
         make_request(instrument="us-preservation", action="preserve",
                      renewal_of_served_at="2024-11-01T09:00:00Z"),
         US_BOB, "content", {"*": "preserve"}, {"*": []}, "09-preserve",
         deadlines=({"kind": "preservation-expiry", "due": "2025-04-30T09:00:00Z"},)),
    Case(9, "eu-preservation-order",
         make_request(issuer=IT_COURT, instrument="eu-epoc-pr", action="preserve",
                      categories=["traffic"], **EPOC_DATE),
         make_facts(bob={"location": "IE"}), "traffic", {"*": "preserve"}, {"*": []},
         "09-preserve", operator="IE",
         deadlines=({"kind": "preservation-expiry", "due": "2026-10-31T09:00:00Z"},)),
    Case(10, "emergency-non-content",
         make_request(instrument="emergency", issuer={"authority": "police"},
                      categories=["subscriber", "content"]),
         make_facts(bob={"location": "IE"}), "subscriber", {"*": "disclose"}, {"*": []},
         "10-emergency", notice="after-emergency"),
    Case(10, "emergency-content",
         make_request(instrument="emergency", issuer={"authority": "police"}),
         make_facts(bob={"location": "IE"}), "content", {"*": "escalate"}, {"*": []},
         "10-emergency-content", notice="after-emergency"),
    Case(11, "hosted-tenant",
         make_request(), make_facts(bob={"location": "US", "hosted_tenant": True}), "content",
         {"*": "redirect-to-customer"}, {"*": []}, "11-hosted-tenant"),
    Case(11, "hosted-tenant-gagged-is-not-redirected",
         make_request(gag={"until": "2025-06-01"}),
         make_facts(bob={"location": "US", "hosted_tenant": True}), "content",
         {"*": "disclose"}, {"*": []}, "12-issuer-territory", notice="at-gag-expiry"),
    Case(12, "issuer-territory", make_request(), US_BOB, "content",
         {"*": "disclose"}, {"*": []}, "12-issuer-territory", notice="before-disclosure"),
    Case(13, "data-abroad", make_request(categories=["traffic"]),
         make_facts(bob={"location": "IE"}), "traffic",
         {L16: "redirect-mlat", C18: "disclose"}, {L16: ["R05"], C18: []}, "13-data-abroad",
         flags=None),
    Case(13, "data-abroad-conflict-with-agreement-country",
         make_request(), make_facts(bob={"location": "GB", "conflict_with": ["GB"]}),
         "content", {L16: "redirect-mlat", C18: "challenge"}, {L16: ["R05"], C18: []},
         "13-data-abroad", policies={C18: "13-challenge-conflict"}),
    Case(14, "uk-order-us-person",
         make_request(issuer={"country": "GB"}, instrument="uk-copo"),
         make_facts(bob={"location": "US", "us_person": True}), "content",
         {L16: "redirect-mlat", C18: "reject"}, {L16: ["R10"], C18: ["R11"]},
         "14-agreement-order", policies={C18: "14-agreement-protected-person"}),
    Case(14, "au-order",
         make_request(issuer={"country": "AU"}, instrument="au-ipo"),
         make_facts(bob={"location": "US"}), "content",
         {L16: "redirect-mlat", C18: "disclose"}, {L16: ["R10"], C18: []},
         "14-agreement-order"),
    Case(15, "epoc-subscriber",
         make_request(issuer=IT_COURT, instrument="eu-epoc", categories=["subscriber"],
                      offence={"country": "IT"}, **EPOC_DATE),
         make_facts(bob={"location": "IE", "residence": "BE"}), "subscriber",
         {"*": "disclose"}, {"*": []}, "15-epoc", operator="IE",
         deadlines=({"kind": "production", "due": "2026-09-11T09:00:00Z"},)),
    Case(15, "epoc-emergency",
         make_request(issuer=IT_COURT, instrument="eu-epoc", categories=["subscriber"],
                      emergency=True, offence={"country": "IT"}, **EPOC_DATE),
         make_facts(bob={"location": "IE"}), "subscriber",
         {"*": "disclose"}, {"*": []}, "15-epoc", operator="IE",
         deadlines=({"kind": "production", "due": "2026-09-01T17:00:00Z"},)),
    Case(15, "epoc-content-all-in-issuing-state",
         make_request(issuer=IT_COURT, instrument="eu-epoc", offence={"country": "IT"},
                      **EPOC_DATE),
         make_facts(bob={"location": "IE", "residence": "IT"}), "content",
         {"*": "disclose"}, {"*": []}, "15-epoc", operator="IE"),
    Case(16, "eu-operator-us-warrant", make_request(),
         make_facts(bob={"location": "IE"}), "content", {"*": "redirect-mlat"},
         {"*": ["R04", "R06"]}, "16-eu-operator-foreign-issuer", operator="IE"),
    Case(17, "voluntary-list-non-content",
         make_request(issuer={"country": "JP", "authority": "police"},
                      instrument="foreign-order", categories=["subscriber"]),
         US_BOB, "subscriber", {L16: "redirect-mlat", C18: "disclose"},
         {L16: ["R05"], C18: []}, "17-voluntary-non-content"),
    Case(18, "no-establishment",
         make_request(issuer={"country": "BR"}, instrument="foreign-order"),
         US_BOB, "content", {"*": "redirect-mlat"}, {"*": ["R04", "R10"]},
         "18-no-establishment"),
    Case(19, "foreign-issuer-where-operator-is-established",
         make_request(issuer={"country": "BR"}, instrument="foreign-order",
                      targets=["bob@example.test", "carol@example.test"]),
         make_facts(bob={"location": "US"}, carol={"location": "BR"}), "content",
         {"*": "redirect-mlat"}, {"*": ["R10"]}, "19-foreign-issuer"),
    Case(19, "budapest-art7-without-agreement",
         make_request(issuer={"country": "BR", "authority": "police"},
                      instrument="budapest-art7", categories=["subscriber"],
                      targets=["bob@example.test", "carol@example.test"]),
         make_facts(bob={"location": "US"}, carol={"location": "BR"}), "subscriber",
         {"*": "redirect-mlat"}, {"*": ["R10"]}, "19-foreign-issuer"),
]


def _params() -> list[Any]:
    return [pytest.param(profile, case, id=f"{'L16' if profile == L16 else 'C18'}-row"
                         f"{case.row:02d}-{case.name}")
            for case in CASES for profile in (L16, C18)]


@pytest.mark.parametrize(("profile", "case"), _params())
def test_row(decide: Decide, profile: str, case: Case) -> None:
    d = decide(profile, case.request, case.facts, operator=case.operator, at=case.at)
    f = outcome(d, case.category, case.target)
    want_outcome, want_reasons, want_policy = case.expected(profile)
    assert f["outcome"] == want_outcome, f
    if want_reasons is not None:
        assert f["reasons"] == want_reasons, f
    assert f["policies"][0] == want_policy, f
    if case.flags is not None:
        assert tuple(f["flags"]) == case.flags
    for deadline in case.deadlines:
        assert deadline in d["deadlines"], d["deadlines"]
    if case.notice is not None:
        assert d["user_notice"]["when"] == case.notice


def test_every_row_of_both_profiles_has_a_case() -> None:
    assert {c.row for c in CASES} >= set(range(1, 20))  # row 20: test_editing.py


@pytest.mark.parametrize("profile", [L16, C18])
def test_all_matching_rows_are_cited_deciding_first(decide: Decide, profile: str) -> None:
    # GB order: row 14 decides; rows 18 (no GB establishment) and 19 also match.
    req = make_request(issuer={"country": "GB"}, instrument="uk-copo")
    f = outcome(decide(profile, req, US_BOB), "content")
    prefix = "L16" if profile == L16 else "C18"
    assert f["policies"][0].startswith(f"{prefix}-14-")
    assert f"{prefix}-18-no-establishment" in f["policies"]
    assert f"{prefix}-19-foreign-issuer" in f["policies"]
    assert f"{prefix}-20-escalate" not in f["policies"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_uk_order_before_agreement_in_force_is_not_under_it(decide: Decide,
                                                            profile: str) -> None:
    req = make_request(issuer={"country": "GB"}, instrument="uk-copo",
                       received_at="2022-10-02T09:00:00Z", served_at="2022-10-02T09:00:00Z")
    f = outcome(decide(profile, req, US_BOB), "content")
    assert f["outcome"] == "redirect-mlat"
    assert f["reasons"] == ["R04", "R10"]


def test_at_date_changes_which_law_applies(decide: Decide) -> None:
    # The same EPOC, evaluated as of before and after the regulation applies.
    req = make_request(issuer=IT_COURT, instrument="eu-epoc", categories=["subscriber"],
                       offence={"country": "IT"}, **EPOC_DATE)
    facts = make_facts(bob={"location": "IE"})
    before = decide(L16, req, facts, operator="IE", at="2026-08-17")
    after = decide(L16, req, facts, operator="IE", at="2026-08-18")
    assert outcome(before, "subscriber")["reasons"] == ["R13"]
    assert outcome(after, "subscriber")["outcome"] == "disclose"
    assert before["evaluated_at"] == "2026-08-17T00:00:00Z"


def test_indefinite_gag_flags_a_challenge(decide: Decide) -> None:
    d = decide(L16, make_request(gag={"indefinite": True}), US_BOB)
    f = outcome(d, "content")
    assert f["flags"] == ["challenge-gag"]
    assert d["user_notice"] == {"when": "at-gag-expiry", "not_before": None}


def test_gdpr_flag_only_on_disclosure(decide: Decide) -> None:
    facts = make_facts(bob={"location": "IE"})
    assert outcome(decide(L16, make_request(), facts), "content")["flags"] == []
    assert outcome(decide(C18, make_request(), facts), "content")["flags"] == ["gdpr-art48"]


def test_decision_is_deterministic(decide: Decide) -> None:
    req = make_request(categories=["subscriber", "traffic", "content"],
                       targets=["bob@example.test", "carol@example.test"])
    facts = make_facts(bob={"location": "IE"}, carol={"location": "US"})
    assert decide(C18, req, facts) == decide(C18, req, facts)
