"""Worked examples of the EU e-Evidence Regulation (2023/1543) as the shipped
profiles decide them (docs/legal-e-evidence.md): an operator seated in Ireland, an
Italian court or prosecutor, orders served on 1 Sept 2026. Each runs through the
Python API and the command line under both profiles (the EU rows are the same in
both)."""

from __future__ import annotations

from typing import Any

import pytest

from letterlock.errors import ConfigError, InvalidInput
from letterlock.policy import load_jurisdictions, parse_facts
from letterlock.policy.model import REFUSAL_GROUNDS

from .harness import C18, L16, Decide, make_facts, make_request, outcome

SERVED = "2026-09-01T09:00:00Z"
COURT = {"country": "IT", "authority": "court", "name": "Tribunale di Milano"}
PROSECUTOR = {"country": "IT", "authority": "prosecutor", "name": "Procura di Milano",
              "judge_validated": False}
PROFILES = pytest.mark.parametrize("profile", [L16, C18])


def epoc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"received_at": SERVED, "served_at": SERVED, "issuer": COURT,
                            "instrument": "eu-epoc", "categories": ["content"],
                            "offence": {"max_penalty_years": 5, "country": "IT"}}
    return make_request(**{**base, **changes})


def non_resident(**answer: Any) -> dict[str, Any]:
    """Bob's mail in Dublin, Bob living in Belgium: an order the enforcing state hears of."""
    extra = {"enforcing_state": answer} if answer else {}
    return make_facts(bob={"location": "IE", "residence": "BE", **extra})


def deadline(d: dict[str, Any], kind: str) -> str:
    [due] = [x["due"] for x in d["deadlines"] if x["kind"] == kind]
    return str(due)


@PROFILES
def test_e1_subscriber_data_of_a_resident_is_produced_within_10_days(
        decide: Decide, profile: str) -> None:
    # A prosecutor may order subscriber data, for any offence (art. 4(1), 5(3)); the
    # person lives in Italy, but subscriber data is never notified anyway (art. 8(1)).
    req = epoc(issuer=PROSECUTOR, categories=["subscriber", "identification"],
               offence={"max_penalty_years": 1, "country": "IT"})
    d = decide(profile, req, make_facts(bob={"location": "IE", "residence": "IT"}),
               operator="IE")
    for category in ("subscriber", "identification"):
        f = outcome(d, category)
        assert f["outcome"] == "disclose"
        assert f["policies"][0].endswith("-15-epoc")
        assert f["reasons"] == []
    assert deadline(d, "production") == "2026-09-11T09:00:00Z"
    assert not [x for x in d["deadlines"] if x["kind"] == "enforcing-state-objection"]
    assert d["user_notice"] == {"when": "on-authority-request", "not_before": None}
    assert d["transparency"] == "non-content"


@PROFILES
def test_e1_the_same_prosecutor_cannot_order_content(decide: Decide, profile: str) -> None:
    # Traffic and content need a judge (art. 4(2)) and a 3-year offence (art. 5(4)).
    d = decide(profile, epoc(issuer=PROSECUTOR, categories=["subscriber", "content"]),
               make_facts(bob={"location": "IE", "residence": "IT"}), operator="IE")
    assert outcome(d, "subscriber")["outcome"] == "disclose"
    assert outcome(d, "content")["reasons"] == ["R15"]
    d = decide(profile, epoc(offence={"max_penalty_years": 2, "country": "IT"}),
               make_facts(bob={"location": "IE", "residence": "IT"}), operator="IE")
    assert outcome(d, "content")["outcome"] == "query-issuer"
    assert outcome(d, "content")["reasons"] == ["R12"]


@PROFILES
def test_e2_content_of_a_non_resident_waits_then_goes_out_when_no_ground_is_raised(
        decide: Decide, profile: str) -> None:
    first = decide(profile, epoc(), non_resident(), operator="IE")
    held = outcome(first, "content")
    assert held["outcome"] == "hold-enforcing-state"
    assert held["policies"][0].endswith("-15-epoc-hold-enforcing-state")
    assert deadline(first, "enforcing-state-objection") == "2026-09-11T09:00:00Z"

    # Nine days on, still nothing: still waiting.
    d = decide(profile, epoc(), non_resident(), operator="IE", at="2026-09-10T09:00:00Z")
    assert outcome(d, "content")["outcome"] == "hold-enforcing-state"

    # The 10 days have passed without a ground for refusal: produce (art. 10(3)).
    d = decide(profile, epoc(), non_resident(), operator="IE", at="2026-09-11T09:00:00Z")
    f = outcome(d, "content")
    assert f["outcome"] == "disclose"
    assert f["policies"][0].endswith("-15-epoc-enforcing-state-silent")
    assert f["reasons"] == []
    assert deadline(d, "production") == "2026-09-11T09:00:00Z"
    assert d["transparency"] == "content"


@PROFILES
def test_e2_a_confirmation_of_no_grounds_ends_the_wait_early(decide: Decide,
                                                            profile: str) -> None:
    facts = non_resident(answered_at="2026-09-03T15:00:00Z", refusal_grounds=[])
    d = decide(profile, epoc(), facts, operator="IE", at="2026-09-03T16:00:00Z")
    assert outcome(d, "content")["outcome"] == "disclose"
    # An answer given after the evaluation date is not known at that date.
    d = decide(profile, epoc(), facts, operator="IE", at="2026-09-02T09:00:00Z")
    assert outcome(d, "content")["outcome"] == "hold-enforcing-state"


@PROFILES
@pytest.mark.parametrize("ground", REFUSAL_GROUNDS)
def test_e3_a_refusal_ground_raised_in_time_refuses(decide: Decide, profile: str,
                                                    ground: str) -> None:
    facts = non_resident(answered_at="2026-09-08T09:00:00Z", refusal_grounds=[ground])
    d = decide(profile, epoc(categories=["subscriber", "content"]), facts, operator="IE",
               at="2026-09-08T10:00:00Z")
    f = outcome(d, "content")
    assert f["outcome"] == "reject"
    assert f["reasons"] == ["R14"]
    assert f["policies"][0].endswith("-15-epoc-enforcing-state-refused")
    # Subscriber data was never the enforcing state's to refuse (art. 8(1)).
    assert outcome(d, "subscriber")["outcome"] == "disclose"
    assert d["transparency"] == "non-content"


@PROFILES
def test_e3_a_refusal_after_the_window_goes_to_counsel(decide: Decide, profile: str) -> None:
    facts = non_resident(answered_at="2026-09-12T09:00:00Z",
                         refusal_grounds=["ne-bis-in-idem"])
    d = decide(profile, epoc(), facts, operator="IE", at="2026-09-12T10:00:00Z")
    f = outcome(d, "content")
    assert f["outcome"] == "escalate"
    assert f["reasons"] == ["R14"]
    assert f["policies"][0].endswith("-15-epoc-enforcing-state-late")


@PROFILES
def test_e3_offence_and_person_in_the_issuing_state_are_not_notified(
        decide: Decide, profile: str) -> None:
    # Art. 8(2): nothing to wait for, and a refusal nobody was asked for is no fact.
    facts = make_facts(bob={"location": "IE", "residence": "IT", "enforcing_state": {
        "answered_at": "2026-09-02T09:00:00Z", "refusal_grounds": ["fundamental-rights"]}})
    d = decide(profile, epoc(), facts, operator="IE", at="2026-09-02T10:00:00Z")
    f = outcome(d, "content")
    assert f["outcome"] == "disclose"
    assert f["policies"][0].endswith("-15-epoc")


@PROFILES
def test_e4_emergency_order_goes_out_in_8_hours_with_96_for_the_state(
        decide: Decide, profile: str) -> None:
    d = decide(profile, epoc(emergency=True), non_resident(), operator="IE")
    f = outcome(d, "content")
    assert f["outcome"] == "disclose"
    assert f["policies"][0].endswith("-15-epoc-emergency-notified")
    assert deadline(d, "production") == "2026-09-01T17:00:00Z"
    assert deadline(d, "enforcing-state-objection") == "2026-09-05T09:00:00Z"

    # The state raises a ground within its 96 hours: what is not out yet stays in.
    refused = non_resident(answered_at="2026-09-03T09:00:00Z",
                           refusal_grounds=["immunity-or-privilege"])
    d = decide(profile, epoc(emergency=True), refused, operator="IE",
               at="2026-09-03T10:00:00Z")
    assert outcome(d, "content")["reasons"] == ["R14"]
    # ... and after the 96 hours it is late.
    late = non_resident(answered_at="2026-09-05T10:00:00Z",
                        refusal_grounds=["immunity-or-privilege"])
    d = decide(profile, epoc(emergency=True), late, operator="IE",
               at="2026-09-05T11:00:00Z")
    assert outcome(d, "content")["outcome"] == "escalate"


@PROFILES
def test_e5_preservation_order_60_days_and_one_extension_of_30(decide: Decide,
                                                              profile: str) -> None:
    # A prosecutor may order preservation of any category, for any offence (art. 4(3),
    # 6): no judge, no threshold, nothing notified.
    pr = epoc(issuer=PROSECUTOR, instrument="eu-epoc-pr", action="preserve",
              categories=["traffic", "content"],
              offence={"max_penalty_years": 1, "country": "IT"})
    d = decide(profile, pr, non_resident(), operator="IE")
    for category in ("traffic", "content"):
        f = outcome(d, category)
        assert f["outcome"] == "preserve"
        assert f["policies"][0].endswith("-09-preserve")
    assert deadline(d, "preservation-expiry") == "2026-10-31T09:00:00Z"  # +60 days
    assert d["user_notice"] == {"when": "none", "not_before": None}
    assert d["transparency"] == "preservation"

    # Within the 60 days the authority extends it once, by 30 days (art. 11):
    # counted from the first service.
    extended = {**pr, "received_at": "2026-10-20T09:00:00Z",
                "served_at": "2026-10-20T09:00:00Z", "renewal_of_served_at": SERVED}
    d = decide(profile, extended, non_resident(), operator="IE")
    assert outcome(d, "content")["outcome"] == "preserve"
    assert deadline(d, "preservation-expiry") == "2026-11-30T09:00:00Z"  # +90 days


@PROFILES
def test_e6_confidentiality_asked_means_no_notice_from_us(decide: Decide,
                                                          profile: str) -> None:
    req = epoc(categories=["subscriber"], gag={"indefinite": True})
    d = decide(profile, req, make_facts(bob={"location": "IE", "residence": "IT"}),
               operator="IE")
    assert outcome(d, "subscriber")["outcome"] == "disclose"
    assert d["user_notice"] == {"when": "on-authority-request", "not_before": None}
    assert not [x for x in d["deadlines"] if x["kind"] == "user-notice"]


def test_before_18_august_2026_the_regulation_does_not_apply(decide: Decide) -> None:
    d = decide(C18, epoc(received_at="2026-08-17T09:00:00Z", served_at="2026-08-17T09:00:00Z"),
               non_resident(), operator="IE")
    assert outcome(d, "content")["reasons"] == ["R13"]


def test_refusal_grounds_are_a_closed_vocabulary() -> None:
    with pytest.raises(InvalidInput, match=r"enforcing_state.refusal_grounds\[0\]"):
        parse_facts(non_resident(answered_at=SERVED, refusal_grounds=["politics"]))
    with pytest.raises(InvalidInput, match=r"enforcing_state\.answered_at: missing"):
        parse_facts(non_resident(refusal_grounds=[]))
    facts = parse_facts(non_resident(answered_at=SERVED, refusal_grounds=["ne-bis-in-idem"]))
    assert facts["bob@example.test"].to_json()["enforcing_state"] == {
        "answered_at": SERVED, "refusal_grounds": ["ne-bis-in-idem"]}


def test_jurisdiction_data_names_every_ground_and_the_notified_categories(
        tmp_path: Any) -> None:
    rules = load_jurisdictions().e_evidence_rules
    assert set(rules.refusal_grounds) == set(REFUSAL_GROUNDS)
    assert rules.refusal_grounds["ne-bis-in-idem"].article == "art. 12(1)(c)"
    assert rules.notified_instruments == {"eu-epoc"}
    assert rules.notified_categories == {"traffic", "content"}

    # An operator's data directory of an earlier release (no e_evidence.json) still
    # loads, with the shipped rules; a broken one names the file and key.
    from letterlock.policy.jurisdiction import DATA_DIR
    for name in ("jurisdictions.json", "agreements.json", "instruments.json",
                 "operator.json"):
        (tmp_path / name).write_text((DATA_DIR / name).read_text())
    assert load_jurisdictions(tmp_path).e_evidence_rules == rules
    (tmp_path / "e_evidence.json").write_text(
        '{"notification": {"instruments": ["eu-epoc"]}, "refusal_grounds": {}}')
    with pytest.raises(ConfigError, match=r"refusal_grounds\.immunity-or-privilege"):
        load_jurisdictions(tmp_path)
