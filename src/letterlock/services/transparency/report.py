"""The public transparency report, computed from recorded legal decisions (never
typed in). Its renderings (JSON, CSV, HTML) are in ``rendering``; the warrant canary,
computed from the same facts, in ``canary``.

Input is one :class:`MatterFacts` per decided legal matter, derived from what the
legal workflow stored (request, facts, decision JSON; see :func:`facts_from_matter`).
:func:`compute_report` is a pure function of those facts and a half-year period. The
report names the signed tree head of the audit log it was computed at, so a reader can
hold the operator to the log that recorded the decisions.

Counting rules (per issuing country, for matters served in the period):

* national-security process (``us-nsl``, ``us-fisa``, intelligence authorities, or a
  decision flagged ``national-security-band``) is never counted per country; it is
  reported for the whole period in bands of 500: ``0-499``, ``500-999``, ...
* ``preservation``: matters whose action is ``preserve``; counted apart from requests.
* ``requests``: every other matter; ``accounts``: the accounts those requests named;
  ``content`` + ``non_content`` + ``no_data`` + ``rejected`` == ``requests``, by the
  decision's transparency bucket (anything else counts as ``rejected``).
* ``mlat_redirects``: requests where some answer was ``redirect-mlat``;
  ``stored_abroad``: requests or preservations whose data was stored outside the
  issuing country. Both are also counted in the columns above.
* ``closed_undecided``: matters (requests and preservations) closed without a
  decision: withdrawn by the authority, or answered outside this system. They are in
  their own column, in none of the others (so the buckets still add up to
  ``requests``); national-security ones go into the bands like any other.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from letterlock.audit.log import open_reader
from letterlock.errors import InvalidInput
from letterlock.policy import load_jurisdictions
from letterlock.storage.legal_sqlite import LEGAL_DB, LegalStore

BUCKETS = ("content", "non-content", "no-data", "rejected")
NATIONAL_SECURITY_INSTRUMENTS = frozenset({"us-nsl", "us-fisa"})
BAND = 500
AUDIT_DIR = "audit"  # under HOME/control, as the application opens it
ROW_KEYS = (
    "country",
    "period",
    "requests",
    "accounts",
    "content",
    "non_content",
    "no_data",
    "rejected",
    "preservation",
    "mlat_redirects",
    "stored_abroad",
    "closed_undecided",
)
UNDECIDED = "closed-undecided"
"""The bucket of a matter closed without a decision."""


# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class MatterFacts:
    """What the report needs to know about one decided legal matter."""

    matter_id: str
    issuing_country: str
    served: date
    instrument: str
    action: str  # produce | preserve | intercept
    accounts: int
    bucket: str  # content | non-content | no-data | rejected (from the decision),
    # or closed-undecided
    stored_abroad: bool
    mlat_redirect: bool
    national_security: bool
    gag: str = "none"  # none | until | indefinite


@dataclass(frozen=True, order=True)
class Period:
    """A half-year: ``2025-H1`` is 1 January to 30 June 2025."""

    year: int
    half: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = re.fullmatch(r"(\d{4})-H([12])", text.strip())
        if m is None:
            raise InvalidInput(f"period must look like 2025-H1 or 2025-H2, not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def containing(cls, day: date) -> Period:
        return cls(day.year, 1 if day.month <= 6 else 2)

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> date:
        return date(self.year, 6, 30) if self.half == 1 else date(self.year, 12, 31)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def __str__(self) -> str:
        return f"{self.year}-H{self.half}"


@dataclass(frozen=True)
class HeadRef:
    """The signed tree head a report or canary was computed at."""

    tree_size: int
    root_hash: str
    timestamp: str
    log_id: str


# --- the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryRow:
    country: str
    period: str
    requests: int = 0
    accounts: int = 0
    content: int = 0
    non_content: int = 0
    no_data: int = 0
    rejected: int = 0
    preservation: int = 0
    mlat_redirects: int = 0
    stored_abroad: int = 0
    closed_undecided: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NationalSecurity:
    requests: str
    accounts: str


@dataclass(frozen=True)
class TransparencyReport:
    period: Period
    rows: tuple[CountryRow, ...]
    totals: CountryRow
    national_security: NationalSecurity
    head: HeadRef | None = None
    matters_counted: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def band(count: int) -> str:
    low = count // BAND * BAND
    return f"{low}-{low + BAND - 1}"


def compute_report(matters: Iterable[MatterFacts], period: Period) -> TransparencyReport:
    """The report for ``period``: a pure function of the decided matters."""
    counts: dict[str, dict[str, int]] = {}
    ns_requests = ns_accounts = counted = 0
    for m in matters:
        if m.served not in period:
            continue
        counted += 1
        if m.national_security:
            ns_requests += 1
            ns_accounts += m.accounts
            continue
        row = counts.setdefault(m.issuing_country.upper(), dict.fromkeys(ROW_KEYS[2:], 0))
        if m.bucket == UNDECIDED:
            row["closed_undecided"] += 1
            continue
        if m.stored_abroad:
            row["stored_abroad"] += 1
        if m.action == "preserve":
            row["preservation"] += 1
            continue
        row["requests"] += 1
        row["accounts"] += m.accounts
        bucket = m.bucket if m.bucket in BUCKETS else "rejected"
        row[bucket.replace("-", "_")] += 1
        if m.mlat_redirect:
            row["mlat_redirects"] += 1
    label = str(period)
    rows = tuple(CountryRow(country, label, **counts[country]) for country in sorted(counts))
    totals = CountryRow("ALL", label, **{k: sum(getattr(r, k) for r in rows) for k in ROW_KEYS[2:]})
    return TransparencyReport(
        period=period,
        rows=rows,
        totals=totals,
        national_security=NationalSecurity(band(ns_requests), band(ns_accounts)),
        matters_counted=counted,
    )


# --- from what the legal workflow stores ------------------------------------------------


class StoredMatter(Protocol):
    """The stored shape of a legal matter (``letterlock.storage.legal_sqlite``)."""

    @property
    def id(self) -> str: ...
    @property
    def request(self) -> str: ...
    @property
    def facts(self) -> str: ...
    @property
    def decision(self) -> str | None: ...
    @property
    def state(self) -> str: ...


def implied_gags() -> dict[str, str]:
    """Instrument -> the gag it carries when the request states none (the shipped
    jurisdiction data, as the legal workflow reads it)."""
    return {name: spec.implied_gag for name, spec in load_jurisdictions().instruments.items()
            if spec.implied_gag}


def facts_from_matter(
    matter_id: str, request: dict[str, Any], facts: dict[str, Any], decision: dict[str, Any],
    implied: Mapping[str, str] | None = None,
) -> MatterFacts:
    """Derive the report's view of one decided matter from its stored JSON documents
    (LEGAL.md: request, facts per target, decision). ``implied``: the gags instruments
    carry on their own (default: :func:`implied_gags`), so that a National Security
    Letter filed with ``"gag": null`` counts as the indefinite order it is."""
    issuer = request.get("issuer") or {}
    country = str(issuer.get("country") or "").upper()
    if not country:
        raise InvalidInput(f"matter {matter_id}: the request names no issuing country")
    served_text = request.get("served_at") or request.get("received_at")
    if not served_text:
        raise InvalidInput(f"matter {matter_id}: the request has no served_at")
    served = datetime.fromisoformat(str(served_text).replace("Z", "+00:00")).date()
    targets = [str(t) for t in request.get("targets") or []]
    instrument = str(request.get("instrument", ""))
    outcomes: list[str] = []
    flags: list[str] = []
    for per_category in (decision.get("targets") or {}).values():
        for answer in (per_category or {}).values():
            outcomes.append(str(answer.get("outcome", "")))
            flags.extend(str(f) for f in answer.get("flags") or [])
    locations = [
        str((facts.get(t) or {}).get("location") or "").upper()
        for t in targets
        if (facts.get(t) or {}).get("exists", True)
    ]
    gag = request.get("gag")
    gag_kind = "none"
    if isinstance(gag, dict):
        gag_kind = "indefinite" if gag.get("indefinite") else "until"
    elif gag is None:
        gag_kind = (implied_gags() if implied is None else implied).get(instrument, "none")
    return MatterFacts(
        matter_id=matter_id,
        issuing_country=country,
        served=served,
        instrument=instrument,
        action=str(request.get("action", "produce")),
        accounts=len(targets),
        bucket=str(decision.get("transparency", "rejected")),
        stored_abroad=any(loc and loc != country for loc in locations),
        mlat_redirect="redirect-mlat" in outcomes,
        national_security=instrument in NATIONAL_SECURITY_INSTRUMENTS
        or issuer.get("authority") == "intelligence"
        or "national-security-band" in flags,
        gag=gag_kind,
    )


def facts_from_stored(rows: Iterable[StoredMatter]) -> list[MatterFacts]:
    """Every decided matter, and every one closed without a decision (bucket
    ``closed-undecided``); open undecided ones are not reported until decided."""
    out = []
    implied = implied_gags()
    for row in rows:
        if row.decision is None and row.state != "closed":
            continue
        try:
            request = json.loads(row.request)
            facts = json.loads(row.facts) if row.facts else {}
            decision = (json.loads(row.decision) if row.decision is not None
                        else {"transparency": UNDECIDED})
        except ValueError as exc:
            raise InvalidInput(f"matter {row.id}: stored JSON is damaged: {exc}") from exc
        out.append(facts_from_matter(row.id, request, facts, decision, implied))
    return out


# --- wiring: stored matters and the audit log head (shared with the canary) -------------


def current_head(audit_dir: Path) -> HeadRef:
    """The latest signed tree head of the audit log (blocking; see ``report_for``)."""
    with open_reader(audit_dir) as log:
        head = log.head()
    return HeadRef(head.tree_size, head.root_hash.hex(), head.timestamp, head.log_id)


async def load_decided_matters(control_dir: Path) -> list[MatterFacts]:
    """The report's facts for every decided matter in ``HOME/control/legal.sqlite3``,
    and every one closed without a decision."""
    if not (control_dir / LEGAL_DB).exists():
        return []
    store = LegalStore(control_dir)
    try:
        rows = await store.list_matters()
    finally:
        await store.close()
    return facts_from_stored(rows)


async def report_for(control_dir: Path, period: Period) -> TransparencyReport:
    """The report for ``period`` from the recorded decisions, naming the head of the
    audit log taken after reading them (so the head covers every decision counted)."""
    matters = await load_decided_matters(control_dir)
    head = await asyncio.to_thread(current_head, control_dir / AUDIT_DIR)
    return replace(compute_report(matters, period), head=head)
