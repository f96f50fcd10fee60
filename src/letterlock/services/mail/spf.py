"""SPF (RFC 7208): may this client IP send mail for this domain? ``check_host`` as
the RFC defines it, with DNS through dnspython.

Supported: every mechanism (``all``, ``include``, ``a``, ``mx``, ``ip4``, ``ip6``,
``exists``; ``ptr``, which the RFC says not to use, never matches), the ``redirect``
modifier, macros (section 7), and the limits of section 4.6.4: at most 10 terms that
query DNS, at most 2 of them answered with nothing ("void"), at most 10 MX hosts.
``exp`` (the explanation for a fail) is ignored: nobody reads it here.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.resolver

RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_MX = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_MACRO = re.compile(r"%\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-|%")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")


class SpfError(Exception):
    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result


@dataclass
class _Budget:
    lookups: int = 0
    void: int = 0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError("permerror", "more than 10 DNS-querying terms")

    def answered(self, records: list[T]) -> list[T]:
        """``records``, an empty answer counted against the void-lookup limit."""
        if not records:
            self.void += 1
            if self.void > MAX_VOID:
                raise SpfError("permerror", "more than 2 lookups found nothing")
        return records


@dataclass
class SpfContext:
    ip: IpAddress
    sender: str
    """The MAIL FROM address (``postmaster@HELO`` for the null sender)."""
    helo: str
    budget: _Budget = field(default_factory=_Budget)


def valid_domain(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return len(name) <= 253 and len(labels) >= 2 and all(_LABEL.match(x) for x in labels)


Lookup = Callable[[str, str], Awaitable[list[str]]]


def resolver_lookup(resolver: dns.asyncresolver.Resolver) -> Lookup:
    """Records of ``name`` and ``rdtype`` as texts ([] for none: NXDOMAIN, no answer);
    SpfError("temperror") when DNS fails."""
    async def lookup(name: str, rdtype: str) -> list[str]:
        try:
            answer = await resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise SpfError("temperror", f"DNS {rdtype} {name}: {exc}") from None
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if rdtype == "MX":
            return [r.exchange.to_text(omit_final_dot=True) for r in answer]
        return [r.to_text() for r in answer]
    return lookup


def _macro_value(letter: str, ctx: SpfContext, domain: str) -> str:
    local, _, sender_domain = ctx.sender.rpartition("@")
    ip = ctx.ip
    if letter == "s":
        return ctx.sender
    if letter == "l":
        return local or "postmaster"
    if letter == "o":
        return sender_domain
    if letter == "d":
        return domain
    if letter in ("i", "c"):
        if ip.version == 4 or letter == "c":
            return str(ip)
        return ".".join(ip.exploded.replace(":", ""))
    if letter == "p":
        return "unknown"
    if letter == "v":
        return "in-addr" if ip.version == 4 else "ip6"
    if letter == "h":
        return ctx.helo
    if letter == "r":
        return "unknown"
    if letter == "t":
        return "0"
    raise SpfError("permerror", f"unknown macro letter {letter}")


def expand(spec: str, ctx: SpfContext, domain: str) -> str:
    """Macro expansion (RFC 7208 section 7). Raises SpfError("permerror")."""
    def one(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "%%":
            return "%"
        if whole == "%_":
            return " "
        if whole == "%-":
            return "%20"
        if whole == "%":
            raise SpfError("permerror", f"bad macro in {spec!r}")
        letter, digits, reverse, delimiters = match.groups()
        value = _macro_value(letter.lower(), ctx, domain)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            keep = int(digits)
            if keep == 0:
                raise SpfError("permerror", "macro keeps zero labels")
            parts = parts[-keep:]
        out = ".".join(parts)
        return urllib.parse.quote(out, safe="") if letter.isupper() else out
    return _MACRO.sub(one, spec)


def _target(arg: str | None, ctx: SpfContext, domain: str) -> str:
    if not arg:
        return domain
    name = expand(arg, ctx, domain).rstrip(".")
    while len(name) > 253 and "." in name:  # section 7.3: drop leftmost labels
        name = name.split(".", 1)[1]
    return name


def _cidr(arg: str | None) -> tuple[str | None, int, int]:
    """(domain-spec, IPv4 prefix, IPv6 prefix) of ``a``/``mx`` arguments."""
    v4, v6 = 32, 128
    if arg is None:
        return None, v4, v6
    spec, _, cidr = arg.partition("/")
    try:
        if cidr:
            first, _, second = cidr.partition("/")
            if first:
                v4 = int(first)
            if second:
                v6 = int(second)
    except ValueError:
        raise SpfError("permerror", f"bad prefix length in {arg!r}") from None
    if not (0 <= v4 <= 32 and 0 <= v6 <= 128):
        raise SpfError("permerror", f"bad prefix length in {arg!r}")
    return spec or None, v4, v6


async def _addresses(lookup: Lookup, name: str, ctx: SpfContext) -> list[IpAddress]:
    out: list[IpAddress] = []
    for text in await lookup(name, "A" if ctx.ip.version == 4 else "AAAA"):
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return out


def _in(ip: IpAddress, candidates: list[IpAddress], v4: int, v6: int) -> bool:
    prefix = v4 if ip.version == 4 else v6
    return any(c.version == ip.version
               and ip in ipaddress.ip_network(f"{c}/{prefix}", strict=False)
               for c in candidates)


async def check_host(ctx: SpfContext, domain: str, lookup: Lookup, depth: int = 0) -> str:
    """The SPF result for ``ctx`` and ``domain``: one of :data:`RESULTS`."""
    try:
        return await _check_host(ctx, domain, lookup, depth)
    except SpfError as exc:
        return exc.result


async def _check_host(ctx: SpfContext, domain: str, lookup: Lookup, depth: int) -> str:
    if not valid_domain(domain):
        return "none"
    records = [r for r in await lookup(domain, "TXT")
               if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if not records:
        return "none"
    if len(records) > 1:
        raise SpfError("permerror", f"{domain} publishes {len(records)} SPF records")
    redirect: str | None = None
    for term in records[0].split()[1:]:
        name, eq, value = term.partition("=")
        if eq and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
            if name.lower() == "redirect":
                if redirect is not None:
                    raise SpfError("permerror", "two redirect modifiers")
                redirect = value
            continue  # exp= and unknown modifiers
        qualifier = _QUALIFIERS.get(term[0], "")
        body = term[1:] if qualifier else term
        mechanism, colon, arg = body.partition(":")
        mechanism = mechanism.lower()
        if mechanism.startswith(("a/", "mx/")):
            mechanism, _, rest = mechanism.partition("/")
            arg, colon = "/" + rest, ":"
        if await _matches(mechanism, arg if colon else None, ctx, domain, lookup, depth):
            return qualifier or "pass"
    if redirect is not None:
        ctx.budget.spend()
        target = _target(redirect, ctx, domain)
        result = await _check_host(ctx, target, lookup, depth + 1)
        return "permerror" if result == "none" else result
    return "neutral"


async def _matches(mechanism: str, arg: str | None, ctx: SpfContext, domain: str,
                   lookup: Lookup, depth: int) -> bool:
    if mechanism == "all":
        return True
    if mechanism in ("ip4", "ip6"):
        try:
            net = ipaddress.ip_network(arg or "", strict=False)
        except ValueError:
            raise SpfError("permerror", f"bad {mechanism} {arg!r}") from None
        if net.version != (4 if mechanism == "ip4" else 6):
            raise SpfError("permerror", f"bad {mechanism} {arg!r}")
        return ctx.ip.version == net.version and ctx.ip in net
    if mechanism == "include":
        ctx.budget.spend()
        if not arg:
            raise SpfError("permerror", "include without a domain")
        if depth >= MAX_LOOKUPS:
            raise SpfError("permerror", "include loop")
        result = await _check_host(ctx, _target(arg, ctx, domain), lookup, depth + 1)
        if result in ("temperror", "permerror"):
            raise SpfError(result, f"include:{arg} gave {result}")
        if result == "none":
            raise SpfError("permerror", f"include:{arg} has no SPF record")
        return result == "pass"
    if mechanism == "a":
        ctx.budget.spend()
        spec, v4, v6 = _cidr(arg)
        found = ctx.budget.answered(
            await _addresses(lookup, _target(spec, ctx, domain), ctx))
        return _in(ctx.ip, found, v4, v6)
    if mechanism == "mx":
        ctx.budget.spend()
        spec, v4, v6 = _cidr(arg)
        hosts = ctx.budget.answered(await lookup(_target(spec, ctx, domain), "MX"))
        if len(hosts) > MAX_MX:
            raise SpfError("permerror", "more than 10 MX hosts")
        for host in hosts:
            if _in(ctx.ip, await _addresses(lookup, host, ctx), v4, v6):
                return True
        return False
    if mechanism == "exists":
        ctx.budget.spend()
        if not arg:
            raise SpfError("permerror", "exists without a domain")
        return bool(ctx.budget.answered(await lookup(_target(arg, ctx, domain), "A")))
    if mechanism == "ptr":
        ctx.budget.spend()
        return False
    raise SpfError("permerror", f"unknown mechanism {mechanism!r}")
