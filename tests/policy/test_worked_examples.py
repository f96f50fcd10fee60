"""LEGAL.md's worked examples (operator US with regions US and IE unless said),
through the Python API and the command line, with the shipped policy files."""

from __future__ import annotations

import pytest

from .harness import C18, L16, Decide, make_facts, make_request, outcome


def test_example_1_l16_warrant_for_irish_data_goes_to_mlat(decide: Decide) -> None:
    req = make_request(categories=["content", "traffic"])
    d = decide(L16, req, make_facts(bob={"location": "IE"}))
    for category in ("content", "traffic"):
        f = outcome(d, category)
        assert f["outcome"] == "redirect-mlat"
        assert f["reasons"] == ["R05"]
        assert f["policies"] == ["L16-13-data-abroad"]
        assert f["flags"] == []
    assert d["profile"] == L16
    assert d["evaluated_at"] == "2025-01-15T09:00:00Z"
    assert d["transparency"] == "rejected"
    assert set(d) == {"profile", "evaluated_at", "targets", "deadlines", "user_notice",
                      "transparency"}


def test_example_2_c18_discloses_irish_data_with_gdpr_flag(decide: Decide) -> None:
    req = make_request(categories=["content", "traffic"])
    d = decide(C18, req, make_facts(bob={"location": "IE", "residence": "IE",
                                         "us_person": False}))
    f = outcome(d, "content")
    assert f["outcome"] == "disclose"
    assert "gdpr-art48" in f["flags"]
    assert f["policies"][0] == "C18-13-data-abroad"
    assert d["transparency"] == "content"


@pytest.mark.parametrize("profile", [L16, C18])
def test_example_3_subpoena_reaches_subscriber_not_content(decide: Decide, profile: str) -> None:
    req = make_request(instrument="us-subpoena", categories=["subscriber", "content"])
    d = decide(profile, req, make_facts(bob={"location": "US"}))
    assert outcome(d, "subscriber")["outcome"] == "disclose"
    content = outcome(d, "content")
    assert content["outcome"] == "reject"
    assert content["reasons"] == ["R03"]
    assert d["transparency"] == "non-content"


@pytest.mark.parametrize("profile", [L16, C18])
def test_example_4_gag_until_date_delays_notice(decide: Decide, profile: str) -> None:
    req = make_request(gag={"until": "2026-01-15"})
    d = decide(profile, req, make_facts(bob={"location": "US"}))
    assert outcome(d, "content")["outcome"] == "disclose"
    assert d["user_notice"] == {"when": "at-gag-expiry", "not_before": "2026-01-15T00:00:00Z"}
    assert {"kind": "user-notice", "due": "2026-01-15T00:00:00Z"} in d["deadlines"]


def test_example_5_c18_uk_order_under_agreement_is_disclosed(decide: Decide) -> None:
    req = make_request(issuer={"country": "GB", "name": "Crown Court"}, instrument="uk-copo",
                       offence={"country": "GB"})
    d = decide(C18, req, make_facts(bob={"location": "US", "us_person": False}))
    f = outcome(d, "content")
    assert f["outcome"] == "disclose"
    assert f["policies"][0] == "C18-14-agreement-order"


@pytest.mark.parametrize("profile", [L16, C18])
def test_example_6_epoc_waits_for_enforcing_state(decide: Decide, profile: str) -> None:
    req = make_request(
        received_at="2026-09-01T09:00:00Z", served_at="2026-09-01T09:00:00Z",
        issuer={"country": "IT", "authority": "court", "name": "Tribunale di Milano"},
        instrument="eu-epoc", offence={"max_penalty_years": 5, "country": "IT"})
    d = decide(profile, req, make_facts(bob={"location": "IE", "residence": "BE"}),
               operator="IE")
    f = outcome(d, "content")
    assert f["outcome"] == "hold-enforcing-state"
    assert f["policies"][0].endswith("-15-epoc-hold-enforcing-state")
    assert {"kind": "enforcing-state-objection", "due": "2026-09-11T09:00:00Z"} in d["deadlines"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_example_7_query_selector_is_overbroad(decide: Decide, profile: str) -> None:
    req = make_request(instrument="us-subpoena", categories=["subscriber"], selector="query")
    d = decide(profile, req)
    f = outcome(d, "subscriber")
    assert f["outcome"] == "reject"
    assert f["reasons"] == ["R07"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_example_8_no_such_account(decide: Decide, profile: str) -> None:
    req = make_request(instrument="us-subpoena", categories=["subscriber"])
    d = decide(profile, req, make_facts(bob={"exists": False, "location": None}))
    f = outcome(d, "subscriber")
    assert f["outcome"] == "no-data"
    assert f["reasons"] == ["R17"]
    assert d["transparency"] == "no-data"
