"""The operator console in headless Chromium (Debian's ``chromium``) against the
application served by uvicorn on a loopback port: an admin signs in by typing into the
form, creates an account, sees it listed, and every console page fits a phone's
screen (390 px) as well as a desktop's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chromium_driver import browser_page, find_chromium, screenshot_dir
from test_pages_a11y import _check, axe_source  # noqa: F401 - the fixture is used

from letterlock.app import App
from letterlock.http.console_auth import COOKIE
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

PASSWORD = "operator password"
DORA = "dora@example.test"
PAGES = ("/console", "/console/accounts", "/console/addresses", "/console/domains",
         "/console/regions", "/console/queue", "/console/certificates", "/console/operators",
         "/console/backups", "/console/audit", "/console/mail")


@pytest.fixture
async def served(app: App) -> AsyncIterator[str]:
    await app.operators.add("root", "admin", PASSWORD, actor="test")
    async with served_at(app) as url:
        yield url


async def test_an_admin_signs_in_and_creates_an_account(served: str, app: App,
                                                        tmp_path: Path) -> None:
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.navigate(f"{served}/console/accounts")
        assert await page.path() == "/console/login"
        await page.type_into("#name", "root")
        await page.type_into("#password", PASSWORD)
        await page.press_enter_and_wait()
        assert await page.path() == "/console"
        assert "Signed in as root (admin)" in await page.text()
        cookies = (await page.send("Network.getCookies"))["cookies"]
        [session] = [c for c in cookies if c["name"] == COOKIE]
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"

        await page.click_and_wait('nav.tabs a[href="/console/accounts"]')
        await page.type_into("#address", DORA)
        await page.evaluate("document.querySelector('#region').value = 'eu-dublin'")
        await page.type_into("#password", "dora's first password")
        await page.type_into("#confirm", "dora's first password")
        await page.click_and_wait('form[action="/console/accounts"] button')
        assert await page.path() == "/console/accounts"
        text = await page.text()
        assert f"Created {DORA} in region eu-dublin" in text and "recovery code" in text
        rows = await page.evaluate(
            "[...document.querySelectorAll('#accounts tbody tr')].map(r => r.innerText)")
        assert any(DORA in row and "eu-dublin" in row for row in rows), rows
        assert (await app.accounts.resolve(DORA)).region == "eu-dublin"
        await page.screenshot(shots / "console-accounts.png")

        for path in PAGES:
            await page.navigate(served + path)
            assert await page.path() == path
            name = "console-" + (path.removeprefix("/console").strip("/") or "overview")
            await page.screenshot(shots / f"{name}.png")
            await page.screenshot(shots / f"{name}-phone.png", width=390)
            for width in (1280, 390):
                await page.send("Emulation.setDeviceMetricsOverride", width=width,
                                height=800, deviceScaleFactor=1, mobile=width < 600)
                await page.navigate(served + path)  # laid out at this width
                wide = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                assert wide <= 0, f"{path} is {wide} px wider than {width} px"
            await page.send("Emulation.clearDeviceMetricsOverride")

        await page.click_and_wait("div.who form button")
        assert await page.path() == "/console/login?bye=1"
        await page.navigate(f"{served}/console")
        assert await page.path() == "/console/login"
    assert (shots / "console-accounts-phone.png").stat().st_size > 10_000


async def test_console_pages_pass_axe(served: str, app: App, tmp_path: Path,
                                      axe_source: str) -> None:  # noqa: F811
    """No serious or critical axe-core finding (WCAG 2.1 A/AA, best practices) and
    nothing wider than 390 or 1280 px on the sign-in form, every admin page (with an
    account in the list) and the page a legal operator gets for an admin area."""
    await app.accounts.create(DORA, "eu-dublin", "dora's first password")
    await app.operators.add("lee", "legal", PASSWORD, actor="test")
    assert CHROMIUM is not None
    problems: list[str] = []
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.send("Page.setBypassCSP", enabled=True)  # lets the test inject axe
        problems += await _check(page, f"{served}/console/login", axe_source)
        for name, paths in (("root", PAGES), ("lee", ("/console", "/console/accounts"))):
            await page.navigate(f"{served}/console/login")
            await page.type_into("#name", name)
            await page.type_into("#password", PASSWORD)
            await page.press_enter_and_wait()
            assert await page.path() == "/console"
            for path in paths:
                problems += await _check(page, served + path, axe_source)
            await page.click_and_wait("div.who form button")
    assert problems == [], "\n".join(problems)
