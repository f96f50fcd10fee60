"""The transparency report as it is published: JSON, CSV (the same row keys), and a
self-contained HTML page with inline SVG charts (no script), each naming the audit
log head the report was computed at."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from letterlock.services.transparency.report import (
    BAND,
    ROW_KEYS,
    CountryRow,
    HeadRef,
    TransparencyReport,
)


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
    "closed_undecided": "#bababa",
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
    "closed_undecided": "Closed without a decision",
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
.scroll { overflow-x: auto; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2 { break-after: avoid; } table, figure { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def render_html(report: TransparencyReport) -> str:
    """The report as a standalone page (a download, or `letterlock report --format
    html`): its own stylesheet, readable on a phone and printable."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Transparency report {report.period}</title>
<style>{_CSS}</style></head>
<body>
{report_body(report)}
</body></html>
"""


def report_body(report: TransparencyReport) -> str:
    """What the report says, as HTML to place in a page: the heading, charts, the
    table by country (in a box that scrolls on a narrow screen), national-security
    bands and the audit log head it was computed at."""
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
    return f"""<h1>Transparency report {period}</h1>
<p>Government requests for user data served from {period.start:%d %B %Y} to
{period.end:%d %B %Y}, per issuing country. Computed from the recorded decisions on
{report.matters_counted} legal matters, never typed in.</p>
{charts}
<h2 id="by-country">Requests by country</h2>
<div class="scroll" role="region" aria-labelledby="by-country" tabindex="0">
<table>
<thead><tr><th>Country</th>{head_rows}</tr></thead>
<tbody>
{body_rows}
</tbody>
<tfoot><tr><td>All</td>{totals}</tr></tfoot>
</table>
</div>
<p class="note">Content + only non-content + no data + rejected = requests. Preservation
requests are counted apart; redirects to mutual legal assistance and demands for data
stored abroad are also counted in the outcome columns. Requests and preservation
requests closed without a decision (withdrawn by the authority, or answered outside
this system) are counted only in their own column.</p>
<h2>National-security process</h2>
<p>Reported in bands of {BAND}, as the law allows: <strong>{esc(ns.requests)}</strong>
requests, affecting <strong>{esc(ns.accounts)}</strong> accounts.</p>
<h2>Verification</h2>
<p class="head">{esc(_head_sentence(report.head))}</p>
<p class="note">Check the head with <code>python -m letterlock.audit.verify head</code>
and that later heads extend it with a consistency proof.</p>
"""
