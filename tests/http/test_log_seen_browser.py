"""The privacy center checks, in a real browser (headless Chromium against uvicorn on
a loopback port), that the audit log it shows extends the one this browser saw on its
last visit, and warns clearly when it does not (issue 14, point 14)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chromium_driver import browser_page, find_chromium, screenshot_dir

from letterlock.app import App
from letterlock.audit.events import AuditEvent, EventType
from letterlock.http.log_seen import COOKIE
from support.env import PASSWORD
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

BOB = "bob@example.test"


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[App, str]]:
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    async with served_at(app) as url:
        yield app, url


async def seen_cookie(page: object) -> dict[str, object] | None:
    cookies = (await page.send("Network.getCookies"))["cookies"]  # type: ignore[attr-defined]
    found = [c for c in cookies if c["name"] == COOKIE]
    return found[0] if found else None


async def test_the_access_page_checks_the_log_it_saw_last(served: tuple[App, str],
                                                          tmp_path: Path) -> None:
    app, base = served
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.navigate(f"{base}/account/login")
        await page.type_into("#address", BOB)
        await page.type_into("#password", PASSWORD)
        await page.press_enter_and_wait()

        await page.navigate(f"{base}/account/access")
        assert "This browser now remembers the log" in await page.text()
        first = await seen_cookie(page)
        assert first is not None and first["httpOnly"] is True
        size, root = str(first["value"]).split("-")

        # The log grows (an operator acts on the account): the next visit checks it.
        await app.audit.record(AuditEvent(EventType.ADMIN_MAIL_IMPORTED, "operator",
                                          datetime.now(UTC), account=BOB))
        await app.audit.flush()  # type: ignore[attr-defined]
        await page.navigate(f"{base}/account/access")
        text = await page.text()
        assert f"Checked: the log now extends the one this browser saw on your last visit " \
               f"({size} entries)" in text
        second = await seen_cookie(page)
        assert second is not None and int(str(second["value"]).split("-")[0]) > int(size)

        # This browser saw another history of the log at that size: a clear warning.
        forged = "0" * 63 + "1"
        await page.send("Network.setCookie", name=COOKIE, value=f"{size}-{forged}",
                        url=f"{base}/account", path="/account", httpOnly=True,
                        sameSite="Strict")
        await page.navigate(f"{base}/account/access")
        text = await page.text()
        assert "Warning: the audit log is not the one this browser saw before" in text
        assert forged in text and f"held {size} entries" in text
        alert = await page.evaluate("document.querySelector('.log-check').getAttribute('role')")
        assert alert == "alert"
        await page.screenshot(shots / "access-log-warning-phone.png", width=390)
        # The warning stays: the remembered head is not replaced by the new one.
        kept = await seen_cookie(page)
        assert kept is not None and kept["value"] == f"{size}-{forged}"
        await page.navigate(f"{base}/account/access")
        assert "Warning: the audit log is not the one" in await page.text()

        # A head larger than the log now: rolled back.
        await page.send("Network.setCookie", name=COOKIE, value=f"999999-{root}",
                        url=f"{base}/account", path="/account", httpOnly=True,
                        sameSite="Strict")
        await page.navigate(f"{base}/account/access")
        assert "fewer than the 999999 this browser saw" in await page.text()
