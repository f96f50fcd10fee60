"""MX lookup with dnspython against a DNS server on loopback (answers built with
dnspython's own message API): preference order, implicit MX, null MX, NXDOMAIN."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from letterlock.services.outbound import NoMailHost, dns_mx_lookup

ZONE = {
    "multi.test.": ["20 backup.multi.test.", "10 primary.multi.test."],
    "nullmx.test.": ["0 ."],
}
NO_MX = {"plain.test."}  # exists, has no MX record


class _DnsServer(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        if name in ZONE and question.rdtype == dns.rdatatype.MX:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", "MX", ZONE[name]))
        elif name not in ZONE and name not in NO_MX:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]


@pytest.fixture
async def resolver() -> AsyncIterator[dns.asyncresolver.Resolver]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_DnsServer,
                                                       local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = port
    res.lifetime = 5
    try:
        yield res
    finally:
        transport.close()


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
