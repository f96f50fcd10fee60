"""DANE for SMTP (RFC 7672): TLSA records at ``_25._tcp.MXHOST`` pin the certificate a
receiving MX must show, where DNSSEC vouches for them.

DANE applies only to answers a validating resolver marked authentic (the AD bit): the
MX RRset and then the TLSA RRset. Without DNSSEC, or with no TLSA records, it does
not apply and delivery goes on as before (MTA-STS, or opportunistic TLS). A TLSA
lookup the resolver could not validate (SERVFAIL: a bogus signature) defers the
delivery (RFC 7672 2.2). Usable records are DANE-EE (usage 3: the server's own
certificate or public key, whatever its names or dates) and DANE-TA (usage 2: a
certificate of the chain the server presented, or its public key, is the trust
anchor; the chain below it must hold together, be within its dates and the leaf must
carry the MX host's name or the TLSA base domain, RFC 7672 3.1.2 and 3.2). PKIX
usages 0 and 1, and selectors or matching types not defined, are unusable (3.1.3);
an RRset with no usable record means "TLS required, unauthenticated" (2.2, 3.1).

The resolver in use must validate (e.g. a local unbound); a stub that copies the
AD bit from an untrusted upstream gives no assurance.
"""

from __future__ import annotations

import _ssl
import datetime as dt
import hashlib
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.resolver
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from letterlock.services.mail.mta_sts import system_resolver

DANE_TA, DANE_EE = 2, 3
MAX_CHAIN = 10
"""Certificates of a presented chain looked at; any beyond are ignored."""


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


class DaneMismatch(Exception):
    """The server's certificates do not satisfy its TLSA records. ``result`` is the
    RFC 8460 result type."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(frozen=True)
class DaneRecords:
    host: str
    """The MX host name."""
    records: tuple[Tlsa, ...]
    base: str = ""
    """The TLSA base domain: the MX host after a DNSSEC-validated CNAME expansion
    ("" or ``host``: none)."""

    @property
    def usable(self) -> tuple[Tlsa, ...]:
        return tuple(r for r in self.records if r.usage in (DANE_TA, DANE_EE)
                     and r.selector in (0, 1) and r.mtype in (0, 1, 2))

    @property
    def names(self) -> tuple[str, ...]:
        """The reference identifiers a DANE-TA leaf is checked against (RFC 7672
        3.2.2): the TLSA base domain and the MX host name."""
        return tuple(dict.fromkeys(n.rstrip(".").lower() for n in (self.base, self.host) if n))


def _fits(record: Tlsa, der: bytes, cert: x509.Certificate) -> bool:
    selected = der if record.selector == 0 else cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = {0: selected, 1: hashlib.sha256(selected).digest(),
              2: hashlib.sha512(selected).digest()}.get(record.mtype)
    return digest is not None and digest == record.data


def matches(records: tuple[Tlsa, ...], der: bytes) -> bool:
    """Whether the server certificate ``der`` matches one DANE-EE record."""
    cert = x509.load_der_x509_certificate(der)
    return any(_fits(r, der, cert) for r in records if r.usage == DANE_EE)


def peer_chain(tls: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The certificates the peer presented, as DER, its own first (not verified by
    ssl: DANE decides). Public API from Python 3.13; before that the C object's
    method of the same name (3.10+). Raises DaneMismatch where neither exists: a
    DANE-TA record is then never taken as satisfied."""
    getter: Any
    if sys.version_info >= (3, 13):
        getter = getattr(tls, "get_unverified_chain", None)
    else:
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        raise DaneMismatch("validation-failure", "this Python does not show the "
                           "server's certificate chain: DANE-TA records cannot be checked")
    return [_der(c) for c in (getter() or [])]


def _der(cert: Any) -> bytes:
    """DER of one chain entry: bytes already (3.13), or an ``_ssl.Certificate``."""
    if isinstance(cert, bytes):
        return cert
    return bytes(cert.public_bytes(_ssl.ENCODING_DER))


def name_matches(pattern: str, name: str) -> bool:
    """An RFC 6125 DNS-ID match, a wildcard only as the whole leftmost label."""
    pattern, name = pattern.rstrip(".").lower(), name.rstrip(".").lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:] and "." in rest
    return pattern == name


def _leaf_names(cert: x509.Certificate) -> list[str]:
    """The DNS-IDs of the SAN, or where there are none the subject's CNs (3.2.3)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns_ids = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_ids = []
    if dns_ids:
        return dns_ids
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)]


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _holds(certs: Sequence[x509.Certificate], ta: int, now: dt.datetime) -> str:
    """Why no path leads from the leaf (``certs[0]``) up to the trust anchor
    ``certs[ta]`` ("": one does): each certificate issued and signed by the next, all
    below the anchor within their dates and, above the leaf, CAs. The others may come
    in any order, with extras (as TLS 1.3 allows). The anchor's own dates are not
    checked: DNSSEC vouches for it, not its validity period."""
    tried = {0}  # a certificate that led nowhere once leads nowhere from elsewhere

    def walk(k: int) -> str:
        cert = certs[k]
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "expired" if now > cert.not_valid_after_utc else "not yet valid"
        if k and not _is_ca(cert):
            return f"certificate {k} is not a CA"
        issuers = [i for i in range(1, len(certs)) if i not in tried
                   and _signed_by(cert, certs[i])]
        if ta in issuers:
            return ""
        why = (("the leaf" if k == 0 else f"certificate {k}")
               + " is not signed by another certificate the server sent")
        for i in issuers:
            tried.add(i)
            why = walk(i)
            if not why:
                return ""
        return why

    return walk(0)


def authenticate(dane: DaneRecords, leaf: bytes, chain: Callable[[], list[bytes]],
                 now: dt.datetime | None = None) -> None:
    """Check the server's certificates against the usable records of ``dane``
    (RFC 7672 3): any one record satisfied is enough. ``leaf`` is the server's own
    certificate; ``chain`` gives the whole presented chain, asked for only where
    DANE-TA records need it. Raises DaneMismatch with the RFC 8460 result type."""
    usable = dane.usable
    if not usable:
        return
    host = dane.host
    try:
        if not leaf:
            raise ValueError("none")
        own = matches(usable, leaf)
    except ValueError as exc:
        raise DaneMismatch("validation-failure",
                           f"{host} showed no certificate that parses") from exc
    if own:
        return
    anchors = [r for r in usable if r.usage == DANE_TA]
    if not anchors:
        raise DaneMismatch("validation-failure",
                           f"the certificate of {host} matches none of its TLSA records")
    presented = chain()[:MAX_CHAIN]
    try:
        certs = [x509.load_der_x509_certificate(d) for d in presented]
    except ValueError as exc:
        raise DaneMismatch("validation-failure",
                           f"{host} presented a certificate that does not parse") from exc
    if not certs or presented[0] != leaf:
        raise DaneMismatch("validation-failure", f"{host} presented no usable chain")
    now = now or dt.datetime.now(dt.UTC)
    why = ""
    for ta in range(1, len(certs)):  # the leaf itself is no DANE-TA anchor
        if not any(_fits(r, presented[ta], certs[ta]) for r in anchors):
            continue
        why = _holds(certs, ta, now)
        if not why:
            break
    else:
        if not why:
            raise DaneMismatch(
                "validation-failure", f"no certificate in the chain {host} presented "
                "matches its DANE-TA records (the server must send the trust anchor)")
        if why in ("expired", "not yet valid"):
            raise DaneMismatch("certificate-expired" if why == "expired"
                               else "validation-failure",
                               f"a certificate of {host} below its DANE-TA anchor is {why}")
        raise DaneMismatch("validation-failure",
                           f"the chain of {host} does not lead to its DANE-TA anchor: {why}")
    presented_names = _leaf_names(certs[0])
    if not any(name_matches(p, n) for p in presented_names for n in dane.names):
        raise DaneMismatch("certificate-host-mismatch",
                           f"the certificate of {host} names none of {', '.join(dane.names)}")


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
        base = await self._expanded(host)
        answer = await self._tlsa(base, port)
        if answer is None and base != host:  # none at the expanded name: the MX's own
            base, answer = host, await self._tlsa(host, port)
        if answer is None:
            return None
        return DaneRecords(host, tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert))
                                       for r in answer), base)

    async def _expanded(self, host: str) -> str:
        """``host`` after CNAME expansion where DNSSEC vouches for the whole of it
        (the TLSA base domain, RFC 7672 2.2.2), else ``host``."""
        try:
            answer = await self._secure(host, "A") or await self._secure(host, "AAAA")
        except dns.exception.DNSException:
            return host
        if answer is None:
            return host
        target = answer.canonical_name.to_text().rstrip(".")
        return target if target.lower() != host.rstrip(".").lower() else host

    async def _tlsa(self, name: str, port: int) -> dns.resolver.Answer | None:
        try:
            return await self._secure(f"_{port}._tcp.{name}", "TLSA")
        except dns.resolver.NoNameservers as exc:  # SERVFAIL: bogus, or unreachable
            raise DaneLookupError(f"TLSA lookup for {name} failed validation") from exc
        except dns.exception.DNSException as exc:
            raise DaneLookupError(f"TLSA lookup for {name} failed: "
                                  f"{type(exc).__name__}") from exc
