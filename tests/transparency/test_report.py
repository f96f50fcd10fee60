"""The transparency report against tables computed by hand from seeded matters."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date

import pytest

from letterlock.errors import InvalidInput
from letterlock.services.transparency.rendering import (
    render_csv,
    render_html,
    render_json,
    report_json,
)
from letterlock.services.transparency.report import (
    ROW_KEYS,
    HeadRef,
    MatterFacts,
    Period,
    band,
    compute_report,
    facts_from_matter,
)


def matter(
    mid: str,
    country: str,
    served: str,
    instrument: str = "us-warrant",
    *,
    action: str = "produce",
    accounts: int = 1,
    bucket: str = "content",
    abroad: bool = False,
    mlat: bool = False,
    ns: bool = False,
    gag: str = "none",
) -> MatterFacts:
    return MatterFacts(mid, country, date.fromisoformat(served), instrument, action, accounts,
                       bucket, abroad, mlat, ns, gag)


SEEDED = [
    matter("M1", "US", "2025-01-15"),
    matter("M2", "US", "2025-02-01", accounts=2, bucket="rejected", abroad=True, mlat=True),
    matter("M3", "US", "2025-03-10", "us-subpoena", bucket="non-content"),
    matter("M4", "US", "2025-04-01", "us-preservation", action="preserve", accounts=3,
           bucket="rejected", abroad=True),
    matter("M5", "GB", "2025-05-05", "uk-copo", abroad=True),
    matter("M6", "GB", "2025-06-30", "uk-copo", bucket="no-data"),
    matter("M7", "DE", "2025-06-01", "foreign-order", accounts=4, bucket="rejected",
           abroad=True, mlat=True),
    matter("M8", "US", "2025-03-03", "us-nsl", accounts=2, bucket="non-content", ns=True),
    matter("M9", "US", "2025-07-01"),  # second half-year
    matter("M10", "US", "2024-12-31"),  # previous year
    matter("M11", "US", "2025-05-05", "us-fisa", accounts=600, ns=True, gag="indefinite"),
    matter("M12", "fr", "2025-01-20", "eu-epoc", bucket="escalated"),  # not a bucket
]

# country: requests, accounts, content, non_content, no_data, rejected, preservation,
#          mlat_redirects, stored_abroad, closed_undecided  -- by hand from SEEDED
EXPECTED_2025_H1 = {
    "DE": (1, 4, 0, 0, 0, 1, 0, 1, 1, 0),
    "FR": (1, 1, 0, 0, 0, 1, 0, 0, 0, 0),
    "GB": (2, 2, 1, 0, 1, 0, 0, 0, 1, 0),
    "US": (3, 4, 1, 1, 0, 1, 1, 1, 2, 0),
}
EXPECTED_TOTALS = (7, 11, 2, 1, 1, 3, 1, 2, 4, 0)
HEAD = HeadRef(1234, "ab" * 32, "2025-07-01T00:00:00.000000Z", "cd" * 32)


def test_seeded_matters_match_the_hand_computed_table() -> None:
    report = compute_report(SEEDED, Period.parse("2025-H1"))
    got = {r.country: tuple(getattr(r, k) for k in ROW_KEYS[2:]) for r in report.rows}
    assert got == EXPECTED_2025_H1
    assert tuple(getattr(report.totals, k) for k in ROW_KEYS[2:]) == EXPECTED_TOTALS
    assert report.national_security.requests == "0-499"
    assert report.national_security.accounts == "500-999"
    assert report.matters_counted == 10
    for r in report.rows:
        assert r.content + r.non_content + r.no_data + r.rejected == r.requests


def test_second_half_year() -> None:
    report = compute_report(SEEDED, Period.parse("2025-H2"))
    assert [(r.country, r.requests, r.content) for r in report.rows] == [("US", 1, 1)]
    assert report.national_security.requests == "0-499"


def test_bands_of_500() -> None:
    assert [band(n) for n in (0, 1, 499, 500, 999, 1000, 1499)] == [
        "0-499", "0-499", "0-499", "500-999", "500-999", "1000-1499", "1000-1499"]


@pytest.mark.parametrize("text", ["2025", "2025-H3", "H1-2025", "2025-h1x", ""])
def test_bad_period_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Period.parse(text)


def test_json_rows_use_exactly_the_documented_keys() -> None:
    report = compute_report(SEEDED, Period.parse("2025-H1"))
    report = replace(report, head=HEAD)
    doc = json.loads(render_json(report))
    assert doc == report_json(report)
    for row in doc["rows"]:
        assert list(row) == [
            "country", "period", "requests", "accounts", "content", "non_content", "no_data",
            "rejected", "preservation", "mlat_redirects", "stored_abroad",
            "closed_undecided"]
        assert row["period"] == "2025-H1"
    assert doc["computed_at_head"]["tree_size"] == 1234
    assert doc["national_security"] == {"requests": "0-499", "accounts": "500-999"}


def test_csv_has_the_head_and_the_rows() -> None:
    report = compute_report(SEEDED, Period.parse("2025-H1"))
    report = replace(report, head=HEAD)
    text = render_csv(report)
    comments = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("tree head size 1234" in c and "ab" * 32 in c for c in comments)
    assert any("0-499 requests, 500-999 accounts" in c for c in comments)
    rows = list(csv.DictReader(io.StringIO("\n".join(
        ln for ln in text.splitlines() if not ln.startswith("#")))))
    assert [r["country"] for r in rows] == ["DE", "FR", "GB", "US"]
    assert rows[3]["stored_abroad"] == "2"


def test_html_has_svg_charts_no_script_and_prints() -> None:
    report = compute_report(SEEDED, Period.parse("2025-H1"))
    report = replace(report, head=HEAD)
    page = render_html(report)
    assert page.count("<svg") == 2
    assert "<script" not in page.lower()
    assert "@media print" in page
    assert "ab" * 32 in page
    assert "<td>US</td><td>3</td><td>4</td>" in page
    assert "0-499" in page and "500-999" in page


def test_empty_period_renders() -> None:
    report = compute_report([], Period.parse("2030-H1"))
    assert report.rows == ()
    assert "No requests in this period" in render_html(report)
    assert report.national_security.requests == "0-499"


# The LEGAL.md request/facts/decision documents, as the legal workflow stores them.
REQUEST_EX1 = {
    "served_at": "2025-01-15T09:00:00Z",
    "issuer": {"country": "US", "authority": "court", "verified": True},
    "instrument": "us-warrant", "action": "produce", "categories": ["content", "traffic"],
    "targets": ["bob@example.test"], "gag": None,
}
FACTS_EX1 = {"bob@example.test": {"exists": True, "location": "IE", "us_person": False}}
DECISION_EX1 = {
    "profile": "location-2016",
    "targets": {"bob@example.test": {
        "content": {"outcome": "redirect-mlat", "reasons": ["R05"], "flags": []},
        "traffic": {"outcome": "redirect-mlat", "reasons": ["R05"], "flags": []}}},
    "transparency": "rejected",
}


def test_facts_from_the_motivating_case() -> None:
    m = facts_from_matter("M-1", REQUEST_EX1, FACTS_EX1, DECISION_EX1)
    assert m == MatterFacts("M-1", "US", date(2025, 1, 15), "us-warrant", "produce", 1,
                            "rejected", stored_abroad=True, mlat_redirect=True,
                            national_security=False, gag="none")


def test_facts_for_national_security_and_gags() -> None:
    nsl = {**REQUEST_EX1, "instrument": "us-nsl", "gag": {"indefinite": True}}
    m = facts_from_matter("M-2", nsl, {"bob@example.test": {"location": "US"}},
                          {"targets": {}, "transparency": "non-content"})
    assert m.national_security and m.gag == "indefinite" and not m.stored_abroad
    spy = {**REQUEST_EX1, "issuer": {"country": "GB", "authority": "intelligence"},
           "gag": {"until": "2026-01-01"}}
    m = facts_from_matter("M-3", spy, FACTS_EX1, DECISION_EX1)
    assert m.national_security and m.gag == "until"
    flagged = {"targets": {"bob@example.test": {"traffic": {
        "outcome": "disclose", "flags": ["national-security-band"]}}}}
    assert facts_from_matter("M-4", REQUEST_EX1, FACTS_EX1, flagged).national_security


def test_facts_need_country_and_date() -> None:
    with pytest.raises(InvalidInput, match="issuing country"):
        facts_from_matter("M-5", {**REQUEST_EX1, "issuer": {}}, {}, DECISION_EX1)
    bad = {k: v for k, v in REQUEST_EX1.items() if k != "served_at"}
    with pytest.raises(InvalidInput, match="served_at"):
        facts_from_matter("M-6", bad, {}, DECISION_EX1)
