"""Regression (issue 14, point 4): an emergency European Production Order for content
showed an 8-hour production deadline on a 10-day hold for the enforcing state, two
things that cannot both hold. Regulation 2023/1543 art. 10(4): in an emergency the
data goes out within 8 hours, and the notified enforcing state has 96 hours to raise
a ground for refusal; only a non-emergency order waits 10 days first."""

from __future__ import annotations

import pytest

from .harness import C18, L16, Decide, make_facts, make_request, outcome

SERVED = "2026-09-01T09:00:00Z"
IT_COURT = {"country": "IT", "authority": "court", "name": "Tribunale di Milano"}
FACTS = make_facts(bob={"location": "IE", "residence": "BE"})  # notified: person in BE


def _epoc(emergency: bool) -> dict[str, object]:
    return make_request(issuer=IT_COURT, instrument="eu-epoc",
                        categories=["subscriber", "content"], emergency=emergency,
                        offence={"max_penalty_years": 5, "country": "IT"},
                        received_at=SERVED, served_at=SERVED)


@pytest.mark.parametrize("profile", [L16, C18])
def test_emergency_order_is_produced_in_8_hours_with_a_96_hour_window(
        decide: Decide, profile: str) -> None:
    d = decide(profile, _epoc(True), FACTS, operator="IE")
    content = outcome(d, "content")
    assert content["outcome"] == "disclose"
    assert content["policies"][0].endswith("-15-epoc-emergency-notified")
    assert d["deadlines"] == [
        {"kind": "production", "due": "2026-09-01T17:00:00Z"},
        {"kind": "enforcing-state-objection", "due": "2026-09-05T09:00:00Z"},
    ]


@pytest.mark.parametrize("profile", [L16, C18])
def test_ordinary_order_still_waits_10_days(decide: Decide, profile: str) -> None:
    d = decide(profile, _epoc(False), FACTS, operator="IE")
    assert outcome(d, "content")["outcome"] == "hold-enforcing-state"
    assert outcome(d, "subscriber")["outcome"] == "disclose"
    assert d["deadlines"] == [
        {"kind": "enforcing-state-objection", "due": "2026-09-11T09:00:00Z"},
        {"kind": "production", "due": "2026-09-11T09:00:00Z"},
    ]
