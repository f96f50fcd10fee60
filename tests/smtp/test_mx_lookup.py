"""MX lookup with dnspython against a DNS server on loopback (answers built with
dnspython's own message API): preference order, implicit MX, null MX, NXDOMAIN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncresolver
import pytest

from letterlock.services.mail.outbound import NoMailHost, dns_mx_lookup
from support.dns_server import dns_server

ZONE = {
    ("multi.test.", "MX"): ["20 backup.multi.test.", "10 primary.multi.test."],
    ("nullmx.test.", "MX"): ["0 ."],
}
NO_MX = ["plain.test."]  # exists, has no MX record


@pytest.fixture
async def resolver() -> AsyncIterator[dns.asyncresolver.Resolver]:
    async with dns_server(ZONE, NO_MX) as res:
        yield res


async def test_mx_hosts_in_preference_order(resolver: dns.asyncresolver.Resolver) -> None:
    assert await dns_mx_lookup("multi.test", resolver) == ["primary.multi.test",
                                                           "backup.multi.test"]


async def test_no_mx_means_the_domain_itself(resolver: dns.asyncresolver.Resolver) -> None:
    assert await dns_mx_lookup("plain.test", resolver) == ["plain.test"]


async def test_null_mx_and_nxdomain_are_permanent(resolver: dns.asyncresolver.Resolver,
                                                  ) -> None:
    with pytest.raises(NoMailHost):
        await dns_mx_lookup("nullmx.test", resolver)
    with pytest.raises(NoMailHost):
        await dns_mx_lookup("missing.test", resolver)
