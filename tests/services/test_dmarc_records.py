"""DMARC's pure parts: policy records (RFC 7489 6.3), organisational domains (3.2),
alignment, and policy discovery and evaluation over an in-memory zone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from letterlock.services.mail import dmarc, spf
from letterlock.services.mail.dmarc import DmarcRecord, parse_record


def test_records() -> None:
    assert parse_record("v=DMARC1; p=reject") == DmarcRecord("reject", "reject")
    assert parse_record("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20") == \
        DmarcRecord("quarantine", "none", "s", "s", 20)
    # Tags are case-insensitive, values of p/sp too; unknown tags are ignored.
    assert parse_record("v=DMARC1; P=Reject; fo=1; rf=afrf") == DmarcRecord("reject", "reject")
    # Bad optional values fall back to their defaults.
    assert parse_record("v=DMARC1; p=none; pct=150; adkim=x") == DmarcRecord("none", "none")
    assert parse_record("v=DMARC1; p=none; pct=abc").pct == 100  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [
    "p=reject; v=DMARC1",          # v= must come first
    "v=DMARC2; p=reject",
    "v=dmarc1; p=reject",          # the version is case-sensitive
    "v=DMARC1; p=bounce",          # no valid p= and no rua=
    "v=DMARC1",
    "",
    "v=spf1 -all",
])
def test_not_a_policy(text: str) -> None:
    assert parse_record(text) is None


def test_invalid_p_with_reports_asked_is_p_none() -> None:
    assert parse_record("v=DMARC1; p=bounce; rua=mailto:d@example.org") == \
        DmarcRecord("none", "none")


def test_organisational_domains_from_the_public_suffix_list() -> None:
    assert dmarc.organisational_domain("mail.example.co.uk") == "example.co.uk"
    assert dmarc.organisational_domain("a.b.example.com.") == "example.com"
    assert dmarc.organisational_domain("Example.COM") == "example.com"
    assert dmarc.organisational_domain("co.uk") == "co.uk"
    assert dmarc.aligned("news.example.com", "example.com", "r")
    assert not dmarc.aligned("news.example.com", "example.com", "s")
    assert not dmarc.aligned("example.co.uk", "other.co.uk", "r")


def test_author_domains() -> None:
    assert dmarc.author_domains(["Bank <a@Bank.Test>", "b@bank.test, c@other.test"]) == \
        ["bank.test", "other.test"]
    assert dmarc.author_domains(["undisclosed-recipients:;", "nobody"]) == []
    assert dmarc.author_domains(["a@bücher.test"]) == ["xn--bcher-kva.test"]


def lookup_in(zone: dict[str, list[str]], failing: frozenset[str] = frozenset(),
              ) -> spf.Lookup:
    async def lookup(name: str, rdtype: str) -> list[str]:
        if name in failing:
            raise spf.SpfError("temperror", "timeout")
        return zone.get(name, [])
    return lookup


async def test_discovery_and_sampling() -> None:
    zone = {"_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine; pct=50"],
            "_dmarc.two.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
            "_dmarc.example.org": ["some other text", "v=DMARC1; p=none"]}
    lookup = lookup_in(zone, frozenset({"_dmarc.flaky.example"}))
    record, inherited = await dmarc.discover("news.example.com", lookup)
    assert record is not None and record.subdomain_policy == "quarantine" and inherited
    assert await dmarc.discover("two.example", lookup) == (None, False)  # two: none
    assert (await dmarc.discover("example.org", lookup))[0] == DmarcRecord("none", "none")

    def drawing(value: int) -> Callable[[int], int]:
        return lambda _n: value

    failing = await dmarc.evaluate_domain("example.com", "fail", "x.test", [], lookup,
                                          sample=drawing(10))
    assert (failing.result, failing.policy, failing.disposition) == \
        ("fail", "reject", "reject")
    out_of_sample = await dmarc.evaluate_domain("example.com", "fail", "x.test", [], lookup,
                                                sample=drawing(50))
    assert out_of_sample.disposition == "quarantine"
    sub = await dmarc.evaluate_domain("a.example.com", "none", "", [], lookup,
                                      sample=drawing(60))
    assert (sub.policy, sub.disposition) == ("quarantine", "none")
    flaky = await dmarc.evaluate_domain("flaky.example", "pass", "flaky.example", [],
                                        lookup)
    assert flaky.result == "temperror" and flaky.disposition == "none"
    dkim_ok = await dmarc.evaluate_domain("example.com", "fail", "", ["mail.example.com"],
                                          lookup)
    assert dkim_ok.result == "pass"
    assert dkim_ok.text() == "dmarc=pass (p=reject dis=none) header.from=example.com"
