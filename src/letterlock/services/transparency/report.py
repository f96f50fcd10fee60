"""The public transparency report and the warrant canary, computed from recorded
legal decisions (never typed in).

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
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from letterlock.audit import records
from letterlock.audit.keys import sign_statement
from letterlock.audit.log import open_reader
from letterlock.audit.store import MerkleLog
from letterlock.errors import InvalidInput
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
)


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
    bucket: str  # content | non-content | no-data | rejected (from the decision)
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


def facts_from_matter(
    matter_id: str, request: dict[str, Any], facts: dict[str, Any], decision: dict[str, Any]
) -> MatterFacts:
    """Derive the report's view of one decided matter from its stored JSON documents
    (LEGAL.md: request, facts per target, decision)."""
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
    """Every decided matter (undecided ones are not reported until decided)."""
    out = []
    for row in rows:
        if row.decision is None:
            continue
        try:
            request = json.loads(row.request)
            facts = json.loads(row.facts) if row.facts else {}
            decision = json.loads(row.decision)
        except ValueError as exc:
            raise InvalidInput(f"matter {row.id}: stored JSON is damaged: {exc}") from exc
        out.append(facts_from_matter(row.id, request, facts, decision))
    return out


# --- renderings ---------------------------------------------------------------------------


def _head_json(head: HeadRef | None) -> dict[str, Any] | None:
    return None if head is None else asdict(head)


def report_json(report: TransparencyReport) -> dict[str, Any]:
    return {
        "period": str(report.period),
        "from": report.period.start.isoformat(),
        "to": report.period.end.isoformat(),
        "computed_at_head": _head_json(report.head),
        "rows": [r.as_dict() for r in report.rows],
        "totals": report.totals.as_dict(),
        "national_security": asdict(report.national_security),
    }


def render_json(report: TransparencyReport) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=False) + "\n"


def render_csv(report: TransparencyReport) -> str:
    """One header line with the JSON row keys, one line per country; the head and the
    national-security bands come first as ``#`` comment lines."""
    out = io.StringIO()
    out.write(f"# letterlock transparency report {report.period}\n")
    out.write(f"# {_head_sentence(report.head)}\n")
    ns = report.national_security
    out.write(f"# national-security process: {ns.requests} requests, {ns.accounts} accounts\n")
    writer = csv.DictWriter(out, fieldnames=ROW_KEYS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow(row.as_dict())
    return out.getvalue()


def _head_sentence(head: HeadRef | None) -> str:
    if head is None:
        return "computed without an audit log head"
    return (
        f"computed at signed tree head size {head.tree_size}, root {head.root_hash}, "
        f"signed {head.timestamp} by log {head.log_id}"
    )


_COLOURS = {
    "content": "#b2182b",
    "non_content": "#ef8a62",
    "no_data": "#999999",
    "rejected": "#2166ac",
    "preservation": "#5aae61",
    "mlat_redirects": "#762a83",
    "stored_abroad": "#e08214",
}
_LABELS = {
    "requests": "Requests",
    "accounts": "Accounts specified",
    "content": "Content disclosed",
    "non_content": "Only non-content disclosed",
    "no_data": "No data found",
    "rejected": "Rejected",
    "preservation": "Preservation requests",
    "mlat_redirects": "Redirected to mutual legal assistance",
    "stored_abroad": "Data stored outside the issuer's country",
}


def _stacked_chart(rows: Sequence[CountryRow], keys: Sequence[str], title: str) -> str:
    """Horizontal stacked bars, one per country, as inline SVG (no script)."""
    bar_h, gap, label_w, width = 22, 10, 60, 480
    total_w = label_w + width + 60
    biggest = max([sum(getattr(r, k) for k in keys) for r in rows] + [1])
    # The legend wraps onto as many lines as its labels need (about 7 units a letter).
    legend: list[tuple[str, float, int]] = []
    lx, line = 0.0, 0
    for key in keys:
        item_w = 16 + 7 * len(_LABELS[key]) + 18
        if lx and lx + item_w > total_w:
            lx, line = 0.0, line + 1
        legend.append((key, lx, line))
        lx += item_w
    height = len(rows) * (bar_h + gap) + 22 * (line + 1) + 18
    esc = html.escape
    parts = [
        f'<svg role="img" aria-label="{esc(title)}" viewBox="0 0 {total_w} '
        f'{height}" width="100%" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{esc(title)}</title>",
    ]
    for i, row in enumerate(rows):
        y = i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + bar_h - 6}" class="lbl">{esc(row.country)}</text>')
        x = float(label_w)
        total = 0
        for key in keys:
            value = getattr(row, key)
            total += value
            if value:
                w = width * value / biggest
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{_COLOURS[key]}"><title>{esc(_LABELS[key])}: {value}</title></rect>'
                )
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + bar_h - 6}" class="num">{total}</text>')
    top = len(rows) * (bar_h + gap) + 12
    for key, x0, row_no in legend:
        ly = top + 22 * row_no
        parts.append(
            f'<rect x="{x0:.0f}" y="{ly}" width="12" height="12" fill="{_COLOURS[key]}"/>'
            f'<text x="{x0 + 16:.0f}" y="{ly + 11}" class="key">{esc(_LABELS[key])}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


_CSS = """
body { font: 15px/1.45 Georgia, 'Times New Roman', serif; color: #111; max-width: 52rem;
       margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ccc; padding: .3rem .4rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #333; font-size: .85rem; vertical-align: bottom; }
tfoot td { border-top: 2px solid #333; font-weight: bold; }
svg text { font: 12px sans-serif; } svg .key { font-size: 10px; }
.head { font-family: monospace; font-size: .8rem; word-break: break-all; }
.note { color: #444; font-size: .9rem; }
figure { margin: 1rem 0; break-inside: avoid; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2 { break-after: avoid; } table, figure { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def render_html(report: TransparencyReport) -> str:
    esc = html.escape
    ns = report.national_security
    cols = ROW_KEYS[2:]
    head_rows = "".join(f"<th>{esc(_LABELS[k])}</th>" for k in cols)
    body_rows = (
        "\n".join(
            "<tr>"
            + f"<td>{esc(r.country)}</td>"
            + "".join(f"<td>{getattr(r, k)}</td>" for k in cols)
            + "</tr>"
            for r in report.rows
        )
        or f'<tr><td colspan="{len(cols) + 1}">No requests in this period.</td></tr>'
    )
    totals = "".join(f"<td>{getattr(report.totals, k)}</td>" for k in cols)
    charts = ""
    if report.rows:
        charts = (
            "<figure>"
            + _stacked_chart(
                report.rows,
                ("content", "non_content", "no_data", "rejected"),
                "Requests by country and outcome",
            )
            + "<figcaption>Requests by issuing country and outcome.</figcaption></figure>"
            + "<figure>"
            + _stacked_chart(
                report.rows,
                ("preservation", "mlat_redirects", "stored_abroad"),
                "Preservation, MLAT redirects and data stored abroad",
            )
            + "<figcaption>Preservation requests, redirects to mutual legal assistance, "
            "and demands for data stored outside the issuer's country.</figcaption></figure>"
        )
    period = report.period
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Transparency report {period}</title>
<style>{_CSS}</style></head>
<body>
<h1>Transparency report {period}</h1>
<p>Government requests for user data served from {period.start:%d %B %Y} to
{period.end:%d %B %Y}, per issuing country. Computed from the recorded decisions on
{report.matters_counted} legal matters, never typed in.</p>
{charts}
<h2>Requests by country</h2>
<table>
<thead><tr><th>Country</th>{head_rows}</tr></thead>
<tbody>
{body_rows}
</tbody>
<tfoot><tr><td>All</td>{totals}</tr></tfoot>
</table>
<p class="note">Content + only non-content + no data + rejected = requests. Preservation
requests are counted apart; redirects to mutual legal assistance and demands for data
stored abroad are also counted in the outcome columns.</p>
<h2>National-security process</h2>
<p>Reported in bands of {BAND}, as the law allows: <strong>{esc(ns.requests)}</strong>
requests, affecting <strong>{esc(ns.accounts)}</strong> accounts.</p>
<h2>Verification</h2>
<p class="head">{esc(_head_sentence(report.head))}</p>
<p class="note">Check the head with <code>python -m letterlock.audit.verify head</code>
and that later heads extend it with a consistency proof.</p>
</body></html>
"""


# --- the warrant canary -------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryKind:
    key: str
    statement: str


CANARY_KINDS = (
    CanaryKind("national-security-letter", "any National Security Letter"),
    CanaryKind("fisa-order", "any order under the Foreign Intelligence Surveillance Act"),
    CanaryKind("national-security", "any other national-security process"),
    CanaryKind("interception", "any demand to intercept communications in real time"),
    CanaryKind("indefinite-gag", "any order forbidding us, without end date, to tell a user"),
)


def canary_kinds_received(matters: Iterable[MatterFacts], period: Period) -> set[str]:
    received: set[str] = set()
    for m in matters:
        if m.served not in period:
            continue
        if m.instrument == "us-nsl":
            received.add("national-security-letter")
        elif m.instrument == "us-fisa":
            received.add("fisa-order")
        elif m.national_security:
            received.add("national-security")
        if m.action == "intercept":
            received.add("interception")
        if m.gag == "indefinite":
            received.add("indefinite-gag")
    return received


def build_canary(
    matters: Iterable[MatterFacts], period: Period, issued_at: datetime, head: HeadRef
) -> dict[str, Any]:
    """The unsigned canary: one statement per kind of order NOT received in the period.

    A kind that was received is simply left out (the law may forbid saying more);
    ``covers`` lists every kind this canary speaks to, so the silence is visible.
    """
    received = canary_kinds_received(matters, period)
    not_received = [k for k in CANARY_KINDS if k.key not in received]
    day = issued_at.date().isoformat()
    return {
        "format": "letterlock-canary-v1",
        "period": str(period),
        "issued_at": issued_at.isoformat().replace("+00:00", "Z"),
        "log_id": head.log_id,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "covers": [k.key for k in CANARY_KINDS],
        "not_received": [k.key for k in not_received],
        "statements": [
            f"As of {day}, we have not received {k.statement} during {period}."
            for k in not_received
        ],
        "notice": "A statement missing from this list is one we can no longer make.",
    }


# --- wiring: stored matters and the audit log head ---------------------------------------


def current_head(audit_dir: Path) -> HeadRef:
    """The latest signed tree head of the audit log (blocking; see ``report_for``)."""
    with open_reader(audit_dir) as log:
        head = log.head()
    return HeadRef(head.tree_size, head.root_hash.hex(), head.timestamp, head.log_id)


async def load_decided_matters(control_dir: Path) -> list[MatterFacts]:
    """The report's facts for every decided matter in ``HOME/control/legal.sqlite3``."""
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


async def signed_canary(
    control_dir: Path, period: Period, issued_at: datetime | None = None
) -> dict[str, Any]:
    """The canary for ``period``, signed with the operator's audit log key."""
    matters = await load_decided_matters(control_dir)
    audit_dir = control_dir / AUDIT_DIR
    head = await asyncio.to_thread(current_head, audit_dir)
    doc = build_canary(matters, period, issued_at or datetime.now(UTC), head)
    return await asyncio.to_thread(sign_statement, audit_dir, doc)


# --- the access feed ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeedPage:
    """Events about one account, each with a self-contained inclusion proof bundle
    (``letterlock-inclusion-v1``, checkable by ``python -m letterlock.audit.verify``)."""

    account: str
    head: dict[str, Any]
    events: tuple[dict[str, Any], ...]
    next_after: int | None


class AccessFeed:
    """What the log says about an account, for its owner.

    Only events readable in the log are listed: an event still under a non-disclosure
    order is a commitment with no account in it, and appears here once revealed. The
    per-account index is built incrementally from the log as it grows (one pass over
    new events per request), so a long-running server scans each event once.
    """

    def __init__(self, audit_dir: Path) -> None:
        self._dir = audit_dir
        self._log: MerkleLog | None = None
        self._scanned = 0
        self._by_account: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _reader(self) -> MerkleLog:
        if self._log is None:
            self._log = open_reader(self._dir)
        else:
            self._log.refresh()
        return self._log

    def page(self, account: str, after: int = -1, limit: int = 100) -> FeedPage:
        """Blocking: call through ``asyncio.to_thread`` (see :meth:`page_async`)."""
        key = account.lower()
        with self._lock:
            log = self._reader()
            for index, leaf in log.iter_leaves(self._scanned, log.size):
                for about in _accounts_in(leaf):
                    self._by_account.setdefault(about, []).append(index)
            self._scanned = log.size
            indices = [i for i in self._by_account.get(key, []) if i > after]
            chosen = indices[: max(1, min(limit, 500))]
            events = []
            for index in chosen:
                bundle = log.inclusion_bundle(index)
                rec = records.decode(bundle["leaf"].encode("utf-8"))
                shown = rec.revealed_event if rec.kind == "reveal" else rec.event
                assert shown is not None
                events.append(
                    {
                        "index": index,
                        "kind": rec.kind,
                        "logged_at": records.format_time(rec.logged_at),
                        "event": records.event_to_json(shown),
                        "committed_as": rec.reveals,
                        "proof": bundle,
                    }
                )
            more = len(indices) > len(chosen)
            return FeedPage(
                account=key,
                head=log.head().to_json(),
                events=tuple(events),
                next_after=chosen[-1] if more and chosen else None,
            )

    async def page_async(self, account: str, after: int = -1, limit: int = 100) -> FeedPage:
        return await asyncio.to_thread(self.page, account, after, limit)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None


def _accounts_in(leaf: bytes) -> set[str]:
    """Accounts an event is about: its own reference and, for a reveal, the revealed
    event's (they are the same when the log wrote the reveal)."""
    rec = records.decode(leaf)
    found = set()
    if rec.event is not None and rec.event.account:
        found.add(rec.event.account.lower())
    if rec.kind == "reveal":
        revealed = rec.revealed_event
        if revealed is not None and revealed.account:
            found.add(revealed.account.lower())
    return found
