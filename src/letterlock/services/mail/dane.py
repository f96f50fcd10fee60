"""DANE for SMTP (RFC 7672): TLSA records at ``_25._tcp.MXHOST`` pin the certificate a
receiving MX must show, where DNSSEC vouches for them.

DANE applies only to answers a validating resolver marked authentic (the AD bit): the
MX RRset and then the TLSA RRset. Without DNSSEC, or with no TLSA records, it does
not apply and delivery goes on as before (MTA-STS, or opportunistic TLS). A TLSA
lookup the resolver could not validate (SERVFAIL: a bogus signature) defers the
delivery (RFC 7672 2.2). Matching is DANE-EE (usage 3): the server's own
certificate or public key, whatever its names or dates. DANE-TA (usage 2) needs the
server's whole chain, which Python's ssl module shows only from 3.13 on: such
records are not usable here, which RFC 7672 3.1 treats as "TLS required,
unauthenticated" (STARTTLS is then still mandatory).

The resolver in use must validate (e.g. a local unbound); a stub that copies the
AD bit from an untrusted upstream gives no assurance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from letterlock.services.mail.mta_sts import system_resolver

DANE_TA, DANE_EE = 2, 3


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int
    """0: the whole certificate, 1: its SubjectPublicKeyInfo."""
    mtype: int
    """0: exact, 1: SHA-256, 2: SHA-512."""
    data: bytes


class DaneLookupError(Exception):
    """The TLSA answer could not be validated: a deferral."""


@dataclass(frozen=True)
class DaneRecords:
    host: str
    records: tuple[Tlsa, ...]

    @property
    def usable(self) -> tuple[Tlsa, ...]:
        return tuple(r for r in self.records if r.usage == DANE_EE
                     and r.selector in (0, 1) and r.mtype in (0, 1, 2))


def matches(records: tuple[Tlsa, ...], der: bytes) -> bool:
    """Whether the server certificate ``der`` matches one DANE-EE record."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    for r in records:
        if r.usage != DANE_EE:
            continue
        selected = der if r.selector == 0 else spki
        digest = {0: selected, 1: hashlib.sha256(selected).digest(),
                  2: hashlib.sha512(selected).digest()}.get(r.mtype)
        if digest is not None and digest == r.data:
            return True
    return False


class Dane:
    def __init__(self, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        self._resolver = resolver or system_resolver()
        self._resolver.use_edns(0, dns.flags.DO, 1232)  # ask for DNSSEC (AD bit)

    async def _secure(self, name: str, kind: str) -> dns.resolver.Answer | None:
        """The answer if it exists and the resolver validated it, else None."""
        try:
            answer = await self._resolver.resolve(name, kind)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        if not answer.response.flags & dns.flags.AD:
            return None
        return answer

    async def records(self, domain: str, host: str, port: int = 25) -> DaneRecords | None:
        """The TLSA records that apply to ``host`` (an MX of ``domain``), or None when
        DANE does not apply (no DNSSEC for the MX or the TLSA RRset, no records).
        Raises DaneLookupError where the TLSA answer failed validation."""
        try:
            if await self._secure(domain, "MX") is None:
                return None
        except dns.exception.DNSException:
            return None
        try:
            answer = await self._secure(f"_{port}._tcp.{host}", "TLSA")
        except dns.resolver.NoNameservers as exc:  # SERVFAIL: bogus, or unreachable
            raise DaneLookupError(f"TLSA lookup for {host} failed validation") from exc
        except dns.exception.DNSException as exc:
            raise DaneLookupError(f"TLSA lookup for {host} failed: "
                                  f"{type(exc).__name__}") from exc
        if answer is None:
            return None
        return DaneRecords(host, tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert))
                                       for r in answer))

