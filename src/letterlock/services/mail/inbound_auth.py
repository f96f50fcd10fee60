"""Checks on mail that arrives from the internet, written down for the recipient's
mail program in an Authentication-Results header field (RFC 8601).

What is checked:
- SPF (RFC 7208, services/mail/spf.py): may the client's IP send for the MAIL FROM domain
  (for the null sender, the HELO name)?
- DKIM signatures (RFC 6376, with dkimpy), each against the key its signer publishes
  in DNS (fetched with dnspython, asynchronously, then handed to dkimpy). A message
  without a signature gets ``dkim=none``.
- DMARC (RFC 7489, services/mail/dmarc.py) from those two results, and the ARC chain
  (RFC 8617, services/mail/arc.py) of a message that carries one.

SPF and DKIM alone refuse nothing. DMARC's policy is acted on by the caller
(:class:`AuthVerdict.disposition`): reject or quarantine, unless the message failed
only because a forwarder the operator trusts changed it and sealed it with ARC.

Fields that claim to come from this server (the same authserv-id) but arrived with
the message are removed first, as RFC 8601 section 5 requires: otherwise a sender
could forge a "pass".
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import dkim
import dns.asyncresolver
import dns.exception
import dns.resolver

from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail import arc, dmarc, spf
from letterlock.services.mail.arc import ArcVerdict
from letterlock.services.mail.dmarc import DmarcVerdict
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger("letterlock.inbound")

SPF_CACHE_S = 60.0
"""An SPF result is reused this long for the same client IP, sender and HELO (a busy
sender's policy is not walked again for every message)."""
SPF_CACHE_MAX = 10_000
MAX_SIGNATURES = 5
"""Signatures checked per message (the first ones); a message may carry many."""
DNS_TIMEOUT_S = 5.0
_TAG = re.compile(rb"([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*([^;]*)")
_DOMAIN = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


@dataclass(frozen=True)
class DkimResult:
    result: str
    """RFC 8601 result: pass, fail, neutral, temperror or permerror."""
    domain: str
    selector: str
    b: str
    """The signature's first characters, to tell signatures of one domain apart."""

    def text(self) -> str:
        props = f" header.d={self.domain}" if self.domain else ""
        props += f" header.s={self.selector}" if self.selector else ""
        props += f" header.b={self.b}" if self.b else ""
        return f"dkim={self.result}{props}"


def _tags(value: bytes) -> dict[str, str]:
    unfolded = re.sub(rb"\s+", b"", value)
    return {m[1].decode("ascii", "replace").lower(): m[2].decode("ascii", "replace")
            for m in _TAG.finditer(unfolded)}


@dataclass(frozen=True)
class AuthVerdict:
    """Everything the checks found about one message."""

    header: bytes
    """The Authentication-Results field to prepend."""
    dmarc: DmarcVerdict | None
    """None when DMARC is not evaluated (``smtp.dmarc`` off)."""
    arc: ArcVerdict
    disposition: str
    """What to do: none, quarantine or reject (DMARC's, after a trusted ARC chain
    overrode it)."""


class InboundChecks:
    def __init__(self, authserv_id: str,
                 resolver: dns.asyncresolver.Resolver | None = None, *,
                 check_dmarc: bool = False, trusted_sealers: Collection[str] = ()) -> None:
        self.authserv_id = authserv_id
        self._dmarc = check_dmarc
        if check_dmarc:  # parse the Public Suffix List now, not during a message
            dmarc.organisational_domain("example.org")
        self._trusted = frozenset(s.strip().lower().rstrip(".") for s in trusted_sealers
                                  if s.strip())
        if resolver is None:
            resolver = dns.asyncresolver.Resolver()
            resolver.lifetime = DNS_TIMEOUT_S
            resolver.cache = dns.resolver.LRUCache()
        self._resolver = resolver
        self._lookup = spf.resolver_lookup(resolver)
        self._spf_cache: dict[tuple[str, str, str], tuple[str, str, float]] = {}

    async def spf(self, ip: str, sender: str, helo: str) -> tuple[str, str]:
        """(SPF result, the identity checked as an RFC 8601 property)."""
        key = (ip, sender.lower(), helo.lower())
        now = time.monotonic()
        hit = self._spf_cache.get(key)
        if hit is not None and hit[2] > now:
            return hit[0], hit[1]
        result, prop = await self._spf(ip, sender, helo)
        if len(self._spf_cache) >= SPF_CACHE_MAX:
            self._spf_cache.clear()
        self._spf_cache[key] = (result, prop, now + SPF_CACHE_S)
        return result, prop

    async def _spf(self, ip: str, sender: str, helo: str) -> tuple[str, str]:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return "none", f"smtp.helo={_safe(helo)}"
        if sender:
            identity, domain = sender, sender.rpartition("@")[2].lower()
            prop = f"smtp.mailfrom={_safe(sender)}"
        else:
            identity, domain = f"postmaster@{helo}", helo.lower()
            prop = f"smtp.helo={_safe(helo)}"
        ctx = spf.SpfContext(address, identity, helo)
        return await spf.check_host(ctx, domain, self._lookup), prop

    async def header_for(self, message: bytes, ip: str, sender: str, helo: str) -> bytes:
        """The Authentication-Results field for a message from the internet."""
        return (await self.evaluate(message, ip, sender, helo)).header

    async def evaluate(self, message: bytes, ip: str, sender: str,
                       helo: str) -> AuthVerdict:
        """SPF, DKIM, ARC and (if enabled) DMARC for a message from the internet."""
        spf_result, prop = await self.spf(ip, sender, helo)
        dkim_results = await self.check(message)
        header = message[:header_end(message)]
        chain = ArcVerdict("none")
        if arc.has_chain(header):
            chain = await arc.verify(message, self._lookup, _tags)
        if not self._dmarc:
            more = [chain.text()] if chain.result != "none" else []
            return AuthVerdict(self.header(dkim_results, f"spf={spf_result} {prop}",
                                           after=more), None, chain, "none")
        authors = [f.value.decode("utf-8", "replace") for f in split_fields(header)
                   if f.key == "from"]
        spf_domain = (sender.rpartition("@")[2] if sender else helo).lower()
        verdict = await dmarc.evaluate(authors, spf_result, spf_domain,
                                       [r.domain for r in dkim_results
                                        if r.result == "pass"], self._lookup)
        disposition, note = verdict.disposition, ""
        if verdict.result == "fail" and disposition != "none" \
                and chain.trusted(self._trusted):
            disposition, note = "none", f"; overridden by ARC from {chain.sealer}"
        more = [verdict.text(note)] + ([chain.text()] if chain.result != "none" else [])
        if verdict.result != "none":
            event(LogEvent.DMARC_EVALUATED, domain=verdict.domain, result=verdict.result,
                  policy=verdict.policy, disposition=disposition,
                  arc=chain.result if chain.result != "none" else None,
                  sealer=chain.sealer if note else None)
        return AuthVerdict(self.header(dkim_results, f"spf={spf_result} {prop}",
                                       after=more), verdict, chain, disposition)

    async def _key(self, name: str) -> tuple[bytes | None, str | None]:
        """(the key's TXT record, None), or (None, the RFC 8601 result that the
        lookup means: no record is a permerror, a DNS failure a temperror)."""
        try:
            records = await self._lookup(name, "TXT")
        except spf.SpfError as exc:
            return None, exc.result
        if not records:
            return None, "permerror"
        return records[0].encode("utf-8"), None

    async def check(self, message: bytes) -> list[DkimResult]:
        header = message[:header_end(message)]
        if b"dkim-signature" not in header.lower():
            return []
        signatures = [f for f in split_fields(header)
                      if f.key == "dkim-signature"][:MAX_SIGNATURES]
        results = []
        for index, field in enumerate(signatures):
            tags = _tags(field.value)
            domain, selector = tags.get("d", "").lower(), tags.get("s", "")
            b = tags.get("b", "")[:8]
            if not (_DOMAIN.match(domain) and _DOMAIN.match(selector)):
                results.append(DkimResult("permerror", "", "", b))
                continue
            record, failed = await self._key(f"{selector}._domainkey.{domain}")
            if record is None:
                results.append(DkimResult(failed or "permerror", domain, selector, b))
                continue
            ok = await asyncio.to_thread(_verify, message, index, record)
            results.append(DkimResult(ok, domain, selector, b))
        return results

    def header(self, results: Sequence[DkimResult], *more: str,
               after: Sequence[str] = ()) -> bytes:
        """The Authentication-Results field for ``results`` (``dkim=none`` if empty),
        the method results in ``more`` before them and in ``after`` after them."""
        parts = [*more, *([r.text() for r in results] or ["dkim=none"]), *after]
        return (f"Authentication-Results: {self.authserv_id};\r\n\t"
                + ";\r\n\t".join(parts) + "\r\n").encode("ascii", "replace")

    def strip_forged(self, message: bytes) -> bytes:
        """``message`` without Authentication-Results fields in our name."""
        end = header_end(message)
        if b"authentication-results" not in message[:end].lower():
            return message
        fields = split_fields(message[:end])
        ours = self.authserv_id.lower()
        forged = [f for f in fields if f.key == "authentication-results"
                  and f.value.split(b";", 1)[0].strip().decode("ascii", "replace").lower()
                  == ours]
        header = message[:end]
        for f in forged:  # each field's exact bytes, continuation lines included
            header = header.replace(f.raw, b"", 1)
        return header + message[end:]


def _safe(text: str) -> str:
    """A property value for the header: printable ASCII without separators."""
    cleaned = re.sub(r"[^\x21-\x7e]|[;()\"\\]", "?", text)[:254]
    return cleaned or "unknown"


def _verify(message: bytes, index: int, record: bytes) -> str:
    def dnsfunc(name: bytes | str, timeout: float = DNS_TIMEOUT_S) -> bytes:
        return record

    try:
        checker = dkim.DKIM(message)
        return "pass" if checker.verify(idx=index, dnsfunc=dnsfunc) else "fail"
    except dkim.ValidationError as exc:
        # The body does not match what was signed: the signature fails. Anything
        # else the validator refuses is a malformed signature.
        return "fail" if "body hash mismatch" in str(exc) else "permerror"
    except (dkim.KeyFormatError, dkim.UnknownKeyTypeError):
        return "permerror"
    except dkim.DnsTimeoutError:
        return "temperror"
    except dkim.DKIMException as exc:
        log.info("DKIM signature %d not checkable: %s", index, exc)
        return "neutral"
    except Exception:  # a malformed message must never fail its delivery
        log.warning("DKIM signature %d: checker failed", index, exc_info=True)
        return "neutral"
