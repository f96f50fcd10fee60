"""The console's queue page shows the TLS reports (RFC 8460) received about our
servers and those sent: over httpx against the real application, and in headless
Chromium at 390 and 1280 px with axe-core (no serious finding, nothing too wide)."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from chromium_driver import browser_page, find_chromium
from test_pages_a11y import _check, axe_source  # noqa: F401 - the fixture is used

from letterlock.app import App
from letterlock.http.server import HttpServer, make_api
from letterlock.services.mail import tls_rpt
from letterlock.services.operations.tls_reports import TlsReportIntake
from letterlock.storage.tls_reports_sqlite import SentRow, TlsReportStore

PASSWORD = "operator password"
CHROMIUM = find_chromium()


@pytest.fixture
async def site(app: App) -> AsyncIterator[httpx.AsyncClient]:
    await app.operators.add("root", "admin", PASSWORD, actor="test")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_api(app)), base_url="http://letterlock.test"
    ) as client:
        form = await client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await client.post(
            "/console/login", data={"csrf": csrf.group(1), "name": "root", "password": PASSWORD}
        )
        yield client


async def seed(app: App) -> None:
    """One report received (about example.test, 12 failures) and one sent."""
    policy = tls_rpt.sts_policy("example.test", "enforce", ["mx.example.test"], 86400)
    report = tls_rpt.build_report(
        organization="Far Away Mail",
        contact="r@far.test",
        report_id="far-1",
        day=date(2026, 12, 4),
        sessions=[
            tls_rpt.SessionCount(
                policy, "certificate-expired", "192.0.2.1", "mx.example.test", "192.0.2.2", 12
            )
        ],
    )
    store = TlsReportStore(app.config.control_dir)
    try:
        intake = TlsReportIntake(store, "tlsrpt@example.test", app.delivery.hosted_domains)
        body = gzip.compress(json.dumps(report).encode())
        await intake.receive(body, via="https", media_type=tls_rpt.MEDIA_GZIP)
        await store.mark_reported(
            SentRow(
                date(2026, 12, 4),
                "other.test",
                "r2",
                datetime.now(UTC),
                "sent",
                "mailto:a@other.test",
                30,
                2,
            )
        )
    finally:
        await store.close()


async def test_queue_page_lists_tls_reports_received_and_sent(
    site: httpx.AsyncClient, app: App
) -> None:
    page = (await site.get("/console/queue")).text
    assert "No TLS report received." in page and 'id="tls-sent"' not in page
    await seed(app)
    page = (await site.get("/console/queue")).text
    received = page.split('id="tls-received"')[1].split("</table>")[0]
    assert "Far Away Mail" in received and "2026-12-04" in received
    assert "<td>example.test</td><td>0</td><td>12</td>" in received
    sent = page.split('id="tls-sent"')[1].split("</table>")[0]
    assert "<td>other.test</td><td>sent</td><td>30</td><td>2</td>" in sent


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_queue_page_with_tls_reports_passes_axe_at_390_and_1280_px(
    app: App,
    tmp_path: Path,
    axe_source: str,  # noqa: F811
) -> None:
    await app.operators.add("root", "admin", PASSWORD, actor="test")
    await seed(app)
    server = HttpServer(app)
    port = await server.start("127.0.0.1", 0)
    served = f"http://127.0.0.1:{port}"
    assert CHROMIUM is not None
    try:
        async with browser_page(CHROMIUM, tmp_path / "profile") as page:
            await page.send("Page.setBypassCSP", enabled=True)  # lets the test inject axe
            await page.navigate(f"{served}/console/login")
            await page.type_into("#name", "root")
            await page.type_into("#password", PASSWORD)
            await page.press_enter_and_wait()
            assert await page.path() == "/console"
            problems = await _check(page, f"{served}/console/queue", axe_source)
            assert "Far Away Mail" in await page.text()
    finally:
        await server.close()
    assert problems == [], "\n".join(problems)
