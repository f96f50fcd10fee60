"""MTA-STS (RFC 8461) for outbound mail: whether a recipient domain asks senders to
deliver only over verified TLS to the MX hosts it names.

A policy is found by the ``_mta-sts.DOMAIN`` TXT record (``v=STSv1; id=...``) and
fetched over HTTPS from ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` (a
certificate valid for that name, no redirects, at most 64 KiB, ``text/plain``). It
is kept for its ``max_age`` and fetched again when the TXT record's id changes; a
kept policy still applies while DNS or the web server is away (RFC 8461 5.1).

Mode ``enforce``: only MX hosts matching an ``mx`` pattern are tried, and only with
STARTTLS and a certificate valid for the MX name; a failure is a deferral (the
queue says why). Mode ``testing``: delivery goes on as without a policy, and the
failure is logged (``tls:policy:failure``, the TLS-RPT result types of RFC 8460).

The HTTPS fetch is a plain HTTP/1.0 GET over asyncio streams: no HTTP client is a
runtime dependency, and this one request needs the name resolved by our own
resolver, the policy's size bound and no redirects, which is all it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from letterlock.services.operations.log_events import LogEvent, event

MAX_POLICY_BYTES = 64 * 1024
MAX_AGE_LIMIT_S = 31557600
"""RFC 8461 3.2: max_age is at most one year."""
FETCH_TIMEOUT_S = 60.0


class PolicyError(Exception):
    """No usable policy: the text, the TXT record or the fetch (its message says
    what, never more than a line)."""


@dataclass(frozen=True)
class Policy:
    mode: str
    """``enforce``, ``testing`` or ``none``."""
    mx: tuple[str, ...]
    max_age_s: int
    id: str = ""

    def allows(self, host: str) -> bool:
        """Whether MX ``host`` matches one of the policy's ``mx`` patterns (RFC 8461
        4.1: ``*.`` stands for exactly one leftmost label)."""
        host = host.rstrip(".").lower()
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, _, rest = host.partition(".")
                if label and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_policy(text: str) -> Policy:
    """The policy in ``text`` (RFC 8461 3.2). Raises PolicyError."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"policy line without a colon: {line[:60]!r}")
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            mx.append(value.rstrip(".").lower())
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"policy mode {mode[:20]!r} unknown")
    age = fields.get("max_age", "")
    if not age.isdigit() or len(age) > 10:
        raise PolicyError("policy max_age missing or not a number")
    if mode != "none" and not mx:
        raise PolicyError("policy names no mx")
    return Policy(mode, tuple(mx), min(int(age), MAX_AGE_LIMIT_S))


def parse_txt(records: list[str]) -> str:
    """The policy id of a domain's ``_mta-sts`` TXT records. Raises PolicyError
    unless exactly one starts with ``v=STSv1``."""
    found = [r for r in records if r.startswith("v=STSv1")]
    if len(found) != 1:
        raise PolicyError(f"{len(found)} STSv1 TXT records")
    for part in found[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key == "id" and value and value.isalnum() and len(value) <= 32:
            return value
    raise PolicyError("STSv1 TXT record without a valid id")


@dataclass(frozen=True)
class StsSettings:
    tls_context: ssl.SSLContext | None = None
    """Trust for the policy's HTTPS server (None: the system's roots)."""
    https_port: int = 443
    """Port of the policy server (tests use another)."""


class MtaSts:
    """Policies of recipient domains, kept for their max_age (per process)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver | None = None,
                 settings: StsSettings | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_failure: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        self._resolver = resolver or system_resolver()
        self._on_failure = on_failure
        """Told (domain, RFC 8460 result) when a policy cannot be had (TLS reports)."""
        self._settings = settings or StsSettings()
        self._monotonic = monotonic
        self._cache: dict[str, tuple[Policy, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0
        """Policies fetched over HTTPS (for tests and the log)."""

    async def policy(self, domain: str) -> Policy | None:
        """The policy that applies to mail for ``domain`` now, or None. A domain
        whose policy cannot be had is treated as having none (RFC 8461 5), except
        that a kept one still applies; such failures are logged for TLS-RPT."""
        domain = domain.rstrip(".").lower()
        async with self._locks.setdefault(domain, asyncio.Lock()):
            kept = self._cache.get(domain)
            if kept is not None and kept[1] <= self._monotonic():
                kept = None
            try:
                policy_id = parse_txt(await self._txt(f"_mta-sts.{domain}"))
            except (PolicyError, dns.exception.DNSException) as exc:
                absent = isinstance(exc, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer)
                if kept is None and not absent:
                    await self._failed(domain, "sts-policy-invalid", str(exc))
                return kept[0] if kept is not None else None
            if kept is not None and kept[0].id == policy_id:
                return kept[0]
            try:
                fetched = await self._fetch(domain)
            except (PolicyError, OSError, TimeoutError, ssl.SSLError) as exc:
                await self._failed(domain, "sts-policy-fetch-error", str(exc)[:200])
                return kept[0] if kept is not None else None
            fetched = Policy(fetched.mode, fetched.mx, fetched.max_age_s, policy_id)
            self._cache[domain] = (fetched, self._monotonic() + fetched.max_age_s)
            event(LogEvent.TLS_POLICY_FETCHED, domain=domain, mode=fetched.mode,
                  max_age=fetched.max_age_s)
            return fetched

    async def _failed(self, domain: str, result: str, reason: str) -> None:
        _failure(domain, result, "", reason)
        if self._on_failure is not None:
            await self._on_failure(domain, result)

    async def _txt(self, name: str) -> list[str]:
        answer = await self._resolver.resolve(name, "TXT")
        return [b"".join(r.strings).decode("ascii", "replace") for r in answer]

    async def _fetch(self, domain: str) -> Policy:
        host = f"mta-sts.{domain}"
        try:
            answer = await self._resolver.resolve(host, "A")
            address = str(next(iter(answer)))
        except dns.exception.DNSException as exc:
            raise PolicyError(f"{host}: no address ({type(exc).__name__})") from exc
        self.fetches += 1
        ctx = self._settings.tls_context or ssl.create_default_context()
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(
                address, self._settings.https_port, ssl=ctx, server_hostname=host)
            try:
                writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n"
                             "User-Agent: letterlock\r\nConnection: close\r\n\r\n"
                             .encode("ascii"))
                await writer.drain()
                response = await reader.read(MAX_POLICY_BYTES + 8192)
                if await reader.read(1):
                    raise PolicyError("policy larger than 64 KiB")
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
        return parse_policy(_body(response))


def _body(response: bytes) -> str:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        raise PolicyError("malformed HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    if len(status) < 2 or status[1] != "200":
        raise PolicyError(f"HTTP status {' '.join(status[1:])[:40]} (redirects are not "
                          "followed)")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    if not headers.get("content-type", "").lower().startswith("text/plain"):
        raise PolicyError("policy is not text/plain")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise PolicyError("chunked answer to an HTTP/1.0 request")
    return body.decode("utf-8", "replace")


def _failure(domain: str, result: str, mx: str, reason: str) -> None:
    failure(domain, "sts", result, mx, reason)


def failure(domain: str, policy: str, result: str, mx: str, reason: str) -> None:
    """One TLS-RPT failure (RFC 8460 4.3 result types) for the policy domain."""
    event(LogEvent.TLS_POLICY_FAILURE, domain=domain, policy=policy, result=result,
          mx=mx or None, reason=reason[:200])


def system_resolver() -> dns.asyncresolver.Resolver:
    """The system's resolver (/etc/resolv.conf), or one asking 127.0.0.1 where there
    is no configuration (lookups then fail, as they would anyway)."""
    try:
        return dns.asyncresolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        return resolver
