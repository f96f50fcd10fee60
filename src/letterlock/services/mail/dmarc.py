"""DMARC (RFC 7489): does the domain in From: stand behind this message?

The author's domain passes when SPF passed for a domain aligned with it, or a DKIM
signature of an aligned domain verified (section 3.1). Aligned means the same domain
(strict, ``adkim=s``/``aspf=s``) or the same organisational domain (relaxed, the
default). The organisational domain is the name one label below its public suffix
(section 3.2), taken from the Public Suffix List as the ``publicsuffixlist`` package
ships it (no download at run time; a new release of the package brings a new list).

The policy is the TXT record at ``_dmarc.<author domain>``, else at
``_dmarc.<organisational domain>`` (section 6.6.3), where ``sp=`` applies to the
subdomain. ``pct=`` samples: a failing message left out of the sample gets the next
policy down (reject -> quarantine -> none, section 6.6.4).

Everything here is pure but the DNS lookups, which the caller hands in (the same
``Lookup`` as SPF's, so tests use one fake DNS server for all of them).
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList

from letterlock.services.mail import spf

POLICIES = ("none", "quarantine", "reject")
MAX_AUTHOR_DOMAINS = 3
"""Distinct domains of a From: with several authors that are each evaluated (the
strictest outcome wins, so a second author cannot dilute a reject)."""
_TAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


@functools.cache
def _psl() -> PublicSuffixList:
    # Parsing the list takes ~50 ms: once per process, on first use.
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """RFC 7489 3.2: the registrable domain of ``domain`` (``mail.example.co.uk`` ->
    ``example.co.uk``); a name that is itself a public suffix is its own."""
    name = domain.lower().rstrip(".")
    return _psl().privatesuffix(name) or name


def aligned(a: str, b: str, mode: str) -> bool:
    """Identifier alignment of two domains: ``s`` strict, ``r`` relaxed."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organisational_domain(a) == organisational_domain(b)


@dataclass(frozen=True)
class DmarcRecord:
    policy: str
    """``p=``: none, quarantine or reject."""
    subdomain_policy: str
    """``sp=`` (``p=`` when absent): for a From: subdomain of where the record is."""
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


def parse_record(text: str) -> DmarcRecord | None:
    """A DMARC policy record, or None for text that is not a usable one (section
    6.3: ``v=DMARC1`` first; an invalid ``p=`` is ``p=none`` when reports are asked
    for, otherwise no policy; unknown tags and bad optional values are ignored)."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        if not part.strip():
            continue
        m = _TAG.match(part)
        if m is None:
            if i == 0:
                return None
            continue
        name, value = m[1].lower(), m[2]
        if i == 0 and (name != "v" or value != "DMARC1"):
            return None
        tags.setdefault(name, value)
    if "v" not in tags:
        return None
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        if not tags.get("rua", "").strip():
            return None
        policy = "none"
    sub = tags.get("sp", "").lower()
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    return DmarcRecord(policy, sub if sub in POLICIES else policy,
                       adkim if adkim in ("r", "s") else "r",
                       aspf if aspf in ("r", "s") else "r",
                       pct if 0 <= pct <= 100 else 100)


@dataclass(frozen=True)
class DmarcVerdict:
    result: str
    """RFC 8601: none (no policy), pass, fail, temperror or permerror."""
    domain: str
    """The author domain (From:) evaluated; empty if there is none."""
    policy: str = ""
    """The policy that applied (``p=`` or ``sp=``); empty without a record."""
    disposition: str = "none"
    """What the policy asks for this message, ``pct=`` applied: none, quarantine or
    reject."""

    def text(self, note: str = "") -> str:
        comment = f" (p={self.policy} dis={self.disposition}{note})" if self.policy else ""
        header_from = f" header.from={_safe(self.domain)}" if self.domain else ""
        return f"dmarc={self.result}{comment}{header_from}"


def author_domains(from_values: Sequence[str]) -> list[str]:
    """The distinct domains of the addresses in the From: fields given (decoded
    values), in order, lower case, IDNA-encoded where possible."""
    out: list[str] = []
    for _name, address in getaddresses(list(from_values)):
        domain = address.rpartition("@")[2].strip().rstrip(".").lower()
        if not domain or "@" not in address:
            continue
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
        if domain not in out:
            out.append(domain)
    return out


async def _record(name: str, lookup: spf.Lookup) -> DmarcRecord | None:
    """The policy published at ``_dmarc.<name>``: None for none (or several, which
    section 6.6.3 says to treat as none). Raises SpfError("temperror")."""
    texts = [t for t in await lookup(f"_dmarc.{name}", "TXT")
             if t.lstrip().startswith("v=DMARC1")]
    return parse_record(texts[0]) if len(texts) == 1 else None


async def discover(domain: str, lookup: spf.Lookup) -> tuple[DmarcRecord | None, bool]:
    """(the policy record for ``domain``, whether it came from the organisational
    domain instead of ``domain`` itself)."""
    record = await _record(domain, lookup)
    if record is not None:
        return record, False
    org = organisational_domain(domain)
    if org != domain:
        return await _record(org, lookup), True
    return None, False


def _next_down(policy: str) -> str:
    return {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")


async def evaluate_domain(domain: str, spf_result: str, spf_domain: str,
                          dkim_pass_domains: Sequence[str], lookup: spf.Lookup, *,
                          sample: Callable[[int], int] = secrets.randbelow) -> DmarcVerdict:
    """The DMARC verdict for author domain ``domain``, given the SPF result for
    ``spf_domain`` (MAIL FROM's domain, or HELO's for the null sender) and the
    domains of the DKIM signatures that verified. ``sample(100)`` draws for pct."""
    if not spf.valid_domain(domain):
        return DmarcVerdict("none", domain)
    try:
        record, inherited = await discover(domain, lookup)
    except spf.SpfError:
        return DmarcVerdict("temperror", domain)
    if record is None:
        return DmarcVerdict("none", domain)
    policy = record.subdomain_policy if inherited else record.policy
    passed = any(aligned(d, domain, record.adkim) for d in dkim_pass_domains) or (
        spf_result == "pass" and bool(spf_domain) and aligned(spf_domain, domain,
                                                               record.aspf))
    if passed:
        return DmarcVerdict("pass", domain, policy, "none")
    disposition = policy if sample(100) < record.pct else _next_down(policy)
    return DmarcVerdict("fail", domain, policy, disposition)


_RANK = {"none": 0, "quarantine": 1, "reject": 2}


async def evaluate(from_values: Sequence[str], spf_result: str, spf_domain: str,
                   dkim_pass_domains: Sequence[str], lookup: spf.Lookup, *,
                   sample: Callable[[int], int] = secrets.randbelow) -> DmarcVerdict:
    """The verdict for a message whose From: fields hold ``from_values``: each author
    domain is evaluated and the strictest disposition wins (a failure beats a pass
    when both have none). A message without an author domain gets ``none``."""
    domains = author_domains(from_values)[:MAX_AUTHOR_DOMAINS]
    if not domains:
        return DmarcVerdict("none", "")
    verdicts = [await evaluate_domain(d, spf_result, spf_domain, dkim_pass_domains,
                                      lookup, sample=sample) for d in domains]
    order = {"fail": 4, "temperror": 3, "permerror": 2, "pass": 1, "none": 0}
    return max(verdicts, key=lambda v: (_RANK[v.disposition], order[v.result]))


def _safe(text: str) -> str:
    return re.sub(r"[^\x21-\x7e]|[;()\"\\]", "?", text)[:254] or "unknown"
