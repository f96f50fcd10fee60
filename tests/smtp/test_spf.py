"""SPF (RFC 7208) check_host against a DNS server on loopback: every mechanism, the
qualifiers, include and redirect, the lookup limits, and the macro examples of the
RFC's section 7.4."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest

from letterlock.services.mail import spf
from support.dns_server import dns_server

ZONE = {
    ("pass.test.", "TXT"): ['"v=spf1 ip4:127.0.0.0/8 -all"'],
    ("fail.test.", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
    ("soft.test.", "TXT"): ['"v=spf1 ~all"'],
    ("neutral.test.", "TXT"): ['"v=spf1 ?all"'],
    ("nomatch.test.", "TXT"): ['"v=spf1 ip4:192.0.2.1"'],
    ("inc.test.", "TXT"): ['"v=spf1 include:fail.test include:pass.test -all"'],
    ("incnone.test.", "TXT"): ['"v=spf1 include:nothing.test -all"'],
    ("redir.test.", "TXT"): ['"v=spf1 redirect=pass.test"'],
    ("redirnone.test.", "TXT"): ['"v=spf1 redirect=nothing.test"'],
    ("a.test.", "TXT"): ['"v=spf1 a -all"'],
    ("a.test.", "A"): ["127.0.0.1"],
    ("acidr.test.", "TXT"): ['"v=spf1 a:a.test/24 -all"'],
    ("mx.test.", "TXT"): ['"v=spf1 mx/24 -all"'],
    ("mx.test.", "MX"): ["10 mail.mx.test."],
    ("mail.mx.test.", "A"): ["127.0.0.9"],
    ("exists.test.", "TXT"): ['"v=spf1 exists:%{i}.ok.exists.test -all"'],
    ("127.0.0.1.ok.exists.test.", "A"): ["127.0.0.2"],
    ("two.test.", "TXT"): ['"v=spf1 -all"', '"v=spf1 +all"'],
    ("other.test.", "TXT"): ['"some other text"', '"v=spf1 +all"'],
    ("loop.test.", "TXT"): ['"v=spf1 include:loop.test -all"'],
    ("many.test.", "TXT"): ['"v=spf1 ' + " ".join(f"a:h{i}.a.test" for i in range(11))
                            + ' -all"'],
    ("void.test.", "TXT"): ['"v=spf1 a:v1.test a:v2.test a:v3.test -all"'],
    ("bad.test.", "TXT"): ['"v=spf1 foo:bar -all"'],
    ("badip.test.", "TXT"): ['"v=spf1 ip4:300.1.1.1 -all"'],
    ("ip6.test.", "TXT"): ['"v=spf1 ip6:::1 -all"'],
    ("case.test.", "TXT"): ['"V=SPF1 IP4:127.0.0.1 -ALL"'],
}
for i in range(11):
    ZONE[(f"h{i}.a.test.", "A")] = ["192.0.2.77"]


@pytest.fixture
async def lookup() -> AsyncIterator[spf.Lookup]:
    async with dns_server(ZONE) as resolver:
        yield spf.resolver_lookup(resolver)


async def result(lookup: spf.Lookup, domain: str, ip: str = "127.0.0.1") -> str:
    ctx = spf.SpfContext(ipaddress.ip_address(ip), f"someone@{domain}", "helo.test")
    return await spf.check_host(ctx, domain, lookup)


@pytest.mark.parametrize("domain, expected", [
    ("pass.test", "pass"), ("fail.test", "fail"), ("soft.test", "softfail"),
    ("neutral.test", "neutral"), ("nomatch.test", "neutral"),
    ("inc.test", "pass"), ("incnone.test", "permerror"),
    ("redir.test", "pass"), ("redirnone.test", "permerror"),
    ("a.test", "pass"), ("acidr.test", "pass"), ("mx.test", "pass"),
    ("exists.test", "pass"), ("case.test", "pass"), ("other.test", "pass"),
    ("nothing.test", "none"), ("not a domain", "none"),
    ("two.test", "permerror"), ("loop.test", "permerror"), ("many.test", "permerror"),
    ("void.test", "permerror"), ("bad.test", "permerror"), ("badip.test", "permerror"),
])
async def test_check_host(lookup: spf.Lookup, domain: str, expected: str) -> None:
    assert await result(lookup, domain) == expected


async def test_addresses_outside_the_policy(lookup: spf.Lookup) -> None:
    assert await result(lookup, "pass.test", "192.0.2.5") == "fail"
    assert await result(lookup, "a.test", "127.0.0.2") == "fail"  # a is /32
    assert await result(lookup, "acidr.test", "127.0.0.200") == "pass"  # /24
    assert await result(lookup, "ip6.test", "::1") == "pass"
    assert await result(lookup, "ip6.test", "::2") == "fail"
    assert await result(lookup, "pass.test", "::1") == "fail"  # no ip6 in the policy


async def test_dns_failure_is_temperror() -> None:
    async def broken(name: str, rdtype: str) -> list[str]:
        raise spf.SpfError("temperror", "no answer in time")

    ctx = spf.SpfContext(ipaddress.ip_address("127.0.0.1"), "a@b.test", "helo.test")
    assert await spf.check_host(ctx, "b.test", broken) == "temperror"


@pytest.mark.parametrize("spec, expanded", [
    ("%{s}", "strong-bad@email.example.com"), ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"), ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"), ("%{d2}", "example.com"), ("%{d1}", "com"),
    ("%{dr}", "com.example.email"), ("%{d2r}", "example.email"), ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"), ("%{lr}", "strong-bad"), ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("100%% sure%_%-", "100% sure %20"),
])
def test_macro_examples_of_the_rfc(spec: str, expanded: str) -> None:
    ctx = spf.SpfContext(ipaddress.ip_address("192.0.2.3"),
                         "strong-bad@email.example.com", "mx.example.org")
    assert spf.expand(spec, ctx, "email.example.com") == expanded


def test_ipv6_macro_and_bad_macros() -> None:
    ctx = spf.SpfContext(ipaddress.ip_address("2001:db8::cb01"),
                         "strong-bad@email.example.com", "mx.example.org")
    assert spf.expand("%{ir}.%{v}._spf.%{d2}", ctx, "email.example.com") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        ".ip6._spf.example.com")
    for bad in ("%{x}", "50%", "%{d0}"):
        with pytest.raises(spf.SpfError):
            spf.expand(bad, ctx, "email.example.com")
