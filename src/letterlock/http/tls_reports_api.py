"""``POST /tlsrpt``: SMTP TLS reports (RFC 8460 5.4) other servers send about ours over
HTTPS, when ``smtp.tls_report_inbox`` is set (publish
``rua=https://HOST/tlsrpt`` beside the mailto: address, with TLS in front of this
listener). The body is ``application/tlsrpt+gzip`` or ``application/tlsrpt+json``;
it is checked and stored as a mailed report is (services/operations/tls_reports.py):
201 with its number, or 400 with the reason (and one log line), 413 past the size
bound. No authentication: anyone may send a report, as anyone may send mail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from letterlock.services.mail.tls_rpt import MAX_REPORT_BYTES, ReportError
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.operations.tls_reports import TlsReportIntake
from letterlock.storage.tls_reports_sqlite import TlsReportStore


def make_tls_report_router(
    control_dir: Path, inbox: str, hosted: Callable[[], Awaitable[set[str]]], *, fsync: bool
) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/tlsrpt",
        status_code=201,
        summary="Receive an SMTP TLS report (RFC 8460)",
        responses={400: {"description": "not a report this server can read"}},
    )
    async def receive_tls_report(request: Request) -> JSONResponse:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_REPORT_BYTES:
                event(LogEvent.TLS_REPORT_REFUSED, via="https", reason="larger than 8 MiB")
                return JSONResponse({"detail": "report larger than 8 MiB"}, status_code=413)
        # Reports come a few times a day: the store is opened for each.
        store = TlsReportStore(control_dir, fsync=fsync)
        try:
            intake = TlsReportIntake(store, inbox, hosted)
            row = await intake.receive(bytes(data), via="https", media_type=media_type)
        except ReportError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        finally:
            await store.close()
        return JSONResponse({"report": row.id}, status_code=201)

    return router
