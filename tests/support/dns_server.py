"""A DNS server on loopback for tests (answers built with dnspython's own message
API), and a resolver pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Zone = Mapping[tuple[str, str], Sequence[str]]
"""(name with final dot, record type) -> record texts, e.g. ("a.test.", "MX"). A
("name.", "CNAME") entry answers other types with the alias and its target's records
(one step)."""


class _Server(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, no_answer: frozenset[str],
                 secure: frozenset[str] = frozenset()) -> None:
        self._zone = zone
        self._no_answer = no_answer
        self._secure = secure
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        records = self._zone.get((name, kind))
        if name in self._secure:  # as a validating resolver marks DNSSEC-signed data
            response.flags |= dns.flags.AD
        alias = self._zone.get((name, "CNAME"))
        if alias and kind != "CNAME" and not records:  # the alias, then its target's
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", "CNAME",
                                                            list(alias)))
            name, records = alias[0].lower(), self._zone.get((alias[0].lower(), kind))
        if records:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", kind,
                                                            list(records)))
        elif name not in self._no_answer and not any(n == name for n, _ in self._zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def dns_server(zone: Zone, no_answer: Sequence[str] = (), secure: Sequence[str] = (),
                     ) -> AsyncIterator[dns.asyncresolver.Resolver]:
    """Serve ``zone`` (names in ``no_answer`` exist but have no records asked for;
    other unknown names are NXDOMAIN; answers for names in ``secure`` carry the AD
    bit, as from a validating resolver) and yield a resolver that asks only it."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Server(zone, frozenset(no_answer), frozenset(n.lower() for n in secure)),
        local_addr=("127.0.0.1", 0))
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = transport.get_extra_info("sockname")[1]
    res.lifetime = 5
    try:
        yield res
    finally:
        transport.close()
