"""The live check of a hosted domain's DNS records (the admin console's Domains page):
each record `letterlock domain show` asks the operator to publish is looked up in the
DNS and compared with what it should say.

The comparison is by type: MX by exchange host (the preference is the operator's
choice), TXT by the whole joined string with spaces folded (DNS splits long strings
anywhere), anything else by text. A name that does not resolve, or resolves to other
values, is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from letterlock.services.mail.dkim_keys import DnsRecord

LIFETIME_S = 3.0

PUBLISHED = "published"
MISMATCH = "different"
MISSING = "not published"


@dataclass(frozen=True)
class RecordCheck:
    record: DnsRecord
    state: str
    """``published``, ``different`` or ``not published``."""
    found: tuple[str, ...]
    detail: str = ""


def _fold(text: str) -> str:
    return " ".join(text.replace('" "', "").replace('"', "").split()).lower().rstrip(".")


def _wanted(record: DnsRecord) -> str:
    if record.type == "MX":
        return _fold(record.value.split()[-1])
    return _fold(record.value)


def _seen(kind: str, rdata: object) -> str:
    if kind == "MX":
        return _fold(str(getattr(rdata, "exchange", rdata)))
    if kind == "TXT":
        strings = getattr(rdata, "strings", ())
        return _fold("".join(s.decode("utf-8", "replace") for s in strings))
    return _fold(str(rdata))


def resolver(nameservers: Sequence[str] | None = None) -> dns.asyncresolver.Resolver:
    """The system's resolver, or one asking ``nameservers`` (``host`` or
    ``host:port``)."""
    if nameservers is None:
        try:
            found = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            found = dns.asyncresolver.Resolver(configure=False)
    else:
        found = dns.asyncresolver.Resolver(configure=False)
        found.nameservers = [n.rsplit(":", 1)[0] if n.count(":") == 1 else n
                             for n in nameservers]
        ports = {n.rsplit(":", 1)[1] for n in nameservers if n.count(":") == 1}
        if ports:
            found.port = int(ports.pop())
    found.lifetime = LIFETIME_S
    return found


async def check(records: Sequence[DnsRecord],
                using: dns.asyncresolver.Resolver) -> list[RecordCheck]:
    out = []
    for record in records:
        try:
            answer = await using.resolve(record.name, record.type)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            out.append(RecordCheck(record, MISSING, (), "no such record"))
            continue
        except (dns.exception.DNSException, OSError) as exc:
            out.append(RecordCheck(record, MISSING, (),
                                   f"lookup failed: {type(exc).__name__}"))
            continue
        found = tuple(_seen(record.type, r) for r in answer)
        state = PUBLISHED if _wanted(record) in found else MISMATCH
        out.append(RecordCheck(record, state, found))
    return out
