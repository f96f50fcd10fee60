"""Public pages, no login: the transparency reports, the warrant canary and the audit
log's signed head with how to check it.

    GET /transparency                   every half-year with decided requests
    GET /transparency/{period}          the report (HTML, computed by services.transparency)
    GET /transparency/{period}.csv|.json
    GET /transparency/canary            the signed canary   GET /transparency/canary.json
    GET /log                            the signed tree head and how to verify it
    GET /log/head.json                  that head as JSON
    GET /log/verify.py                  the standalone verifier (one file)
    GET /log/tlog/...                   the same log as C2SP checkpoints and tiles
                                        (tlog_pages.py)

Everything shown is computed from what was recorded, at the moment it is asked for.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from letterlock.app import App
from letterlock.audit import verify as verify_mod
from letterlock.audit.log import open_reader
from letterlock.errors import InvalidInput, LetterlockError
from letterlock.http.render import REPORT_CSP, PageRenderer, page_headers
from letterlock.http.tlog_pages import install_tlog_routes
from letterlock.services.transparency import canary, rendering
from letterlock.services.transparency import report as transparency
from letterlock.services.transparency.report import Period, TransparencyReport

AUDIT_DIR = "audit"


def _head_json(audit_dir: Path) -> dict[str, Any]:
    """The latest signed tree head (blocking: run in a thread)."""
    with open_reader(audit_dir) as log:
        doc: dict[str, Any] = log.head().to_json()
    return doc


def _period(text: str) -> Period | None:
    try:
        return Period.parse(text)
    except InvalidInput:
        return None


def _canary_period(request: Request) -> Period:
    """The half-year asked for with ``?period=``, else the current one."""
    return _period(request.query_params.get("period", "")) or Period.containing(
        datetime.now(UTC).date())


DOWNLOADS: dict[str, tuple[Callable[[TransparencyReport], str], str]] = {
    "csv": (rendering.render_csv, "text/csv; charset=utf-8"),
    "json": (lambda r: json.dumps(rendering.report_json(r), indent=2) + "\n",
             "application/json"),
    "html": (rendering.render_html, "text/html; charset=utf-8"),
}
"""A report's downloadable forms: renderer and media type."""


def install_public_pages(api: FastAPI, app: App, pages: PageRenderer) -> None:
    router = APIRouter(include_in_schema=False)
    control_dir = app.config.control_dir
    audit_dir = control_dir / AUDIT_DIR
    verifier_source = Path(verify_mod.__file__).read_bytes()

    def view(template: str, status: int = 200, **context: Any) -> Response:
        return pages.html(template, {"web": None, **context}, status=status)

    def not_found(what: str) -> Response:
        return view("error.html", 404, title="Not found", section="transparency",
                    message=what)

    # -- transparency ---------------------------------------------------------------------

    @router.get("/transparency")
    async def transparency_index() -> Response:
        matters = await transparency.load_decided_matters(control_dir)
        now = Period.containing(datetime.now(UTC).date())
        periods = sorted({Period.containing(m.served) for m in matters} | {now}, reverse=True)
        rows = []
        for period in periods:
            report = transparency.compute_report(matters, period)
            rows.append({"period": str(period), "start": period.start.isoformat(),
                         "end": period.end.isoformat(), "current": period == now,
                         "requests": report.totals.requests,
                         "accounts": report.totals.accounts,
                         "preservation": report.totals.preservation,
                         "rejected": report.totals.rejected,
                         "ns_requests": report.national_security.requests})
        return view("transparency.html", title="Transparency reports",
                    section="transparency", rows=rows, band=transparency.BAND)

    @router.get("/transparency/canary")
    async def canary_page(request: Request) -> Response:
        period = _canary_period(request)
        doc = await canary.signed_canary(control_dir, period)
        kinds = {k.key: k.statement for k in canary.CANARY_KINDS}
        missing = [kinds[k] for k in doc["covers"] if k not in doc["not_received"]]
        return view("canary.html", title="Warrant canary", section="canary", doc=doc,
                    missing=missing, period=str(period),
                    base=str(request.base_url).rstrip("/"),
                    document=json.dumps(doc, indent=2, sort_keys=True))

    @router.get("/transparency/canary.json")
    async def canary_json(request: Request) -> Response:
        period = _canary_period(request)
        doc = await canary.signed_canary(control_dir, period)
        return JSONResponse(doc, headers={
            "Content-Disposition": f'attachment; filename="canary-{period}.json"'})

    async def report_of(period: str) -> TransparencyReport | Response:
        """The half-year's report, or the page saying there is no such half-year."""
        chosen = _period(period)
        if chosen is None:
            return not_found(f"There is no half-year called {period}.")
        return await transparency.report_for(control_dir, chosen)

    @router.get("/transparency/{period}.{fmt}")
    async def report_download(period: str, fmt: str) -> Response:
        """The report as a file: CSV, JSON, or a standalone HTML page (its own
        stylesheet, printable)."""
        if fmt not in DOWNLOADS:
            return not_found(f"There is no {fmt} form of a report.")
        report = await report_of(period)
        if isinstance(report, Response):
            return report
        render, media_type = DOWNLOADS[fmt]
        headers = page_headers(REPORT_CSP) if fmt == "html" else {}
        headers["Content-Disposition"] = \
            f'attachment; filename="transparency-{report.period}.{fmt}"'
        return Response(render(report), media_type=media_type, headers=headers)

    @router.get("/transparency/{period}")
    async def report_html(period: str) -> Response:
        report = await report_of(period)
        if isinstance(report, Response):
            return report
        chosen = report.period
        return view("transparency_report.html", title=f"Transparency report {chosen}",
                    section="transparency", period=str(chosen),
                    body=Markup(rendering.report_body(report)))

    # -- the audit log ----------------------------------------------------------------------

    async def head_or_none() -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(_head_json, audit_dir)
        except LetterlockError:
            return None

    @router.get("/log")
    async def log_page(request: Request) -> Response:
        head = await head_or_none()
        base = str(request.base_url).rstrip("/")
        return view("log.html", 200 if head else 503, title="The audit log",
                    section="log", head=head, base=base)

    @router.get("/log/head.json")
    async def head_json() -> Response:
        head = await head_or_none()
        if head is None:
            return JSONResponse({"detail": "the audit log is unavailable"}, status_code=503)
        return JSONResponse(head, headers={
            "Content-Disposition": f'attachment; filename="head-{head["tree_size"]}.json"'})

    @router.get("/log/verify.py")
    async def verifier() -> Response:
        return Response(verifier_source, media_type="text/x-python; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="verify.py"'})

    api.include_router(router)
    api.state.tlog = install_tlog_routes(api, audit_dir, app.config.server.hostname)
