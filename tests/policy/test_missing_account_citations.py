"""Regression (issue 17, point 9): a request for an address that has no account cited,
beside the no-account row, rows that presuppose stored data: a us-nsl cited the
data-abroad row (an unknown location counted as "abroad"), others the hosted-tenant,
reach, EU and foreign-issuer rows. Nothing is stored, so only what applies is cited:
the no-account row (or a row above it that decides), and the request's flags. The
same holds when nothing is known about the account (a human looks first)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from letterlock.policy.rules import PROFILES_DIR, validate

from .harness import C18, L16, Decide, decide_api, make_facts, make_request, outcome

INSTRUMENTS = (
    "us-subpoena", "us-2703d-order", "us-warrant", "us-preservation", "us-nsl", "us-fisa",
    "emergency", "uk-copo", "au-ipo", "eu-epoc", "eu-epoc-pr", "mlat", "budapest-art7",
    "foreign-order", "civil",
)
ISSUERS = ("US", "GB", "AU", "IT", "IE", "BR")
PRESERVING = ("us-preservation", "eu-epoc-pr")
MISSING = make_facts(bob={"exists": False, "location": None})
HOSTED_MISSING = make_facts(bob={"exists": False, "location": None, "hosted_tenant": True})


def _rows_cited(finding: dict[str, Any]) -> list[str]:
    return [p for p in finding["policies"] if "-F-" not in p]


@pytest.mark.parametrize("profile", [L16, C18])
def test_us_nsl_for_missing_account_cites_only_the_no_account_row(decide: Decide,
                                                                    profile: str) -> None:
    prefix = "L16" if profile == L16 else "C18"
    req = make_request(instrument="us-nsl", categories=["subscriber", "traffic"],
                       issuer={"authority": "administrative", "name": "FBI"})
    d = decide(profile, req, MISSING)
    for category in ("subscriber", "traffic"):
        f = outcome(d, category)
        assert f["outcome"] == "no-data" and f["reasons"] == ["R17"]
        assert f"{prefix}-13-data-abroad" not in f["policies"]
        # The NSL's own flags still apply: it is gagged and counted in bands.
        assert f["policies"] == [f"{prefix}-04-no-account", f"{prefix}-F-challenge-gag",
                                 f"{prefix}-F-national-security-band"]


@pytest.mark.parametrize("profile", [L16, C18])
@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_missing_account_cites_no_row_that_presupposes_data(profile: str,
                                                            instrument: str) -> None:
    prefix = "L16" if profile == L16 else "C18"
    action = "preserve" if instrument in PRESERVING else "produce"
    for issuer in ISSUERS:
        for operator in ("US", "IE"):
            for facts in (MISSING, HOSTED_MISSING):
                req = make_request(
                    instrument=instrument, action=action,
                    categories=["subscriber", "traffic", "content"],
                    received_at="2026-09-01T09:00:00Z", served_at="2026-09-01T09:00:00Z",
                    issuer={"country": issuer}, offence={"country": issuer})
                d = decide_api(profile, req, facts, operator=operator)
                for category in ("subscriber", "traffic", "content"):
                    f = outcome(d, category)
                    where = (instrument, issuer, operator, category, f)
                    assert f["outcome"] == "no-data", where
                    assert _rows_cited(f) == [f"{prefix}-04-no-account"], where


@pytest.mark.parametrize("profile", [L16, C18])
def test_row_above_no_account_still_decides_and_nothing_below_is_cited(profile: str) -> None:
    prefix = "L16" if profile == L16 else "C18"
    unverified = make_request(issuer={"verified": False})
    f = outcome(decide_api(profile, unverified, MISSING), "content")
    assert f["outcome"] == "reject" and f["reasons"] == ["R08"]
    assert f["policies"] == [f"{prefix}-01-unverified", f"{prefix}-04-no-account"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_unknown_account_cites_only_facts_unknown(profile: str) -> None:
    prefix = "L16" if profile == L16 else "C18"
    req = make_request(instrument="us-nsl", categories=["subscriber"])
    f = outcome(decide_api(profile, req, {}), "subscriber")
    assert f["outcome"] == "escalate"
    assert _rows_cited(f) == [f"{prefix}-04-facts-unknown"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_existing_account_still_cites_every_matching_row(profile: str) -> None:
    # The cut is the no-account row's: an account with data abroad keeps its citations.
    prefix = "L16" if profile == L16 else "C18"
    req = make_request(issuer={"country": "GB"}, instrument="foreign-order",
                       categories=["subscriber"], offence={"country": "GB"})
    f = outcome(decide_api(profile, req, make_facts(bob={"location": "IE"})), "subscriber")
    assert f"{prefix}-19-foreign-issuer" in f["policies"]
    assert len(_rows_cited(f)) > 1


def test_conclusive_belongs_on_a_row(tmp_path: Path) -> None:
    directory = tmp_path / "profile"
    shutil.copytree(PROFILES_DIR / L16, directory)
    flags = directory / "flags.cedar"
    flags.write_text(flags.read_text().replace('@flag("challenge-gag")',
                                               '@flag("challenge-gag")\n@conclusive("true")'))
    messages = [p.message for p in validate(directory)]
    assert any("L16-F-challenge-gag: @conclusive belongs on a @row" in m for m in messages)
