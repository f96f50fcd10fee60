"""The web pages in a real browser: headless Chromium (Debian's ``chromium``) against
the application served by uvicorn on a loopback port.

One test logs in end to end the way a person does (typing into the form, pressing
Enter, clicking Log out) over the DevTools protocol; the others use Chromium's own
command line (``--dump-dom``, ``--screenshot``, ``--print-to-pdf``). Screenshots are
written to ``LETTERLOCK_SCREENSHOTS`` when set (else the test's temporary directory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chromium_driver import browser_page, find_chromium, run_chromium, screenshot_dir

from letterlock.app import App
from letterlock.http.web_sessions import COOKIE
from letterlock.services.transparency.report import Period
from support.env import PASSWORD
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

BOB = "bob@example.test"


def legal_request(target: str) -> dict[str, object]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "received_at": now, "served_at": now,
        "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                   "judge_validated": True, "verified": True},
        "instrument": "us-warrant", "action": "produce", "categories": ["subscriber"],
        "targets": [target],
        "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
        "emergency": False, "gag": None, "renewal_of_served_at": None,
    }


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[App, str]]:
    """Bob in eu-dublin with some mail and a decided legal request; the HTTP server on
    a free loopback port."""
    ref, _ = await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    for i in range(3):
        await app.delivery.deliver(
            f"From: alice@example.org\r\nTo: {BOB}\r\nSubject: note {i}\r\n\r\n"
            f"Message {i}.\r\n".encode(), [ref])
    matter = await app.legal.file(legal_request(BOB), "lee")
    await app.legal.decide(matter.id, "lee")
    async with served_at(app) as url:
        yield app, url


async def test_login_browse_and_logout_in_chromium(served: tuple[App, str],
                                                   tmp_path: Path) -> None:
    _app, base = served
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        # Not logged in: the privacy center sends the browser to the login form.
        await page.navigate(f"{base}/account")
        assert await page.path() == "/account/login"
        await page.screenshot(shots / "account-login.png")

        # A wrong password is refused with a message, and no session starts.
        await page.type_into("#address", BOB)
        await page.type_into("#password", "not the password")
        await page.press_enter_and_wait()
        assert "do not match an account" in await page.text()
        assert await page.evaluate("document.querySelector('#address').value") == BOB

        await page.type_into("#password", PASSWORD)
        await page.press_enter_and_wait()
        assert await page.path() == "/account"
        text = await page.text()
        assert "Where your mail lives" in text and "eu-dublin" in text
        assert "Ireland" in text and f"Logged in as {BOB}" in text
        await page.screenshot(shots / "account-overview.png")
        await page.screenshot(shots / "account-overview-phone.png", width=390)
        # On a phone-sized screen nothing is wider than the screen.
        await page.send("Emulation.setDeviceMetricsOverride", width=390, height=800,
                        deviceScaleFactor=1, mobile=True)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.send("Emulation.clearDeviceMetricsOverride")

        cookies = (await page.send("Network.getCookies"))["cookies"]
        [session] = [c for c in cookies if c["name"] == COOKIE]
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"
        # Scripts cannot read it, and there is nothing else of ours in the page's reach.
        assert COOKIE not in str(await page.evaluate("document.cookie"))

        for tab, heading, name in (
                ("Who touched your account", "The operator created your account",
                 "account-access.png"),
                ("Legal requests", "Legal matter", "account-legal.png"),
                ("Export", "Download all my mail", "account-export.png"),
                ("Password", "Change your password", "account-password.png")):
            await page.click_and_wait(_tab_selector(tab))
            assert heading in await page.text(), tab
            await page.screenshot(shots / name)

        # The proof link downloads JSON the verifier accepts (checked in test_pages.py);
        # here: it is a real link in the page.
        links = await page.evaluate(
            "[...document.querySelectorAll('a[href$=\"proof.json\"]')].length")
        assert links == 0  # we are on the password tab now
        await page.navigate(f"{base}/account/access")
        assert await page.evaluate(
            "[...document.querySelectorAll('a[href$=\"proof.json\"]')].length") >= 2

        await page.click_and_wait("div.who form button")
        assert await page.path() == "/account/login?bye=1"
        assert "You are logged out" in await page.text()
        await page.navigate(f"{base}/account/legal")
        assert await page.path() == "/account/login"
    assert (shots / "account-overview.png").stat().st_size > 10_000


def _tab_selector(label: str) -> str:
    hrefs = {"Who touched your account": "/account/access", "Legal requests": "/account/legal",
             "Export": "/account/export", "Password": "/account/password"}
    return f'nav.tabs a[href="{hrefs[label]}"]'


async def test_public_pages_render_from_the_command_line(served: tuple[App, str],
                                                         tmp_path: Path) -> None:
    _app, base = served
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    period = str(Period.containing(datetime.now(UTC).date()))
    expected = {
        "/": "Your email belongs to you",
        "/transparency": "Transparency reports",
        f"/transparency/{period}": f"Transparency report {period}",
        "/transparency/canary": "we have not received any National Security Letter",
        "/log": "The current signed head",
    }
    for path, words in expected.items():
        dom = await run_chromium(CHROMIUM, tmp_path / "profile", "--dump-dom", base + path)
        assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
        assert words in dom.stdout.decode(), path
        name = "public-" + (path.strip("/").replace("/", "-") or "home") + ".png"
        shot = await run_chromium(CHROMIUM, tmp_path / "profile", f"--screenshot={shots / name}",
                            base + path)
        assert shot.returncode == 0 and (shots / name).stat().st_size > 10_000, path
    # The report prints (the pages are meant to work on paper).
    pdf = tmp_path / "report.pdf"
    printed = await run_chromium(CHROMIUM, tmp_path / "profile", "--no-pdf-header-footer",
                           f"--print-to-pdf={pdf}", f"{base}/transparency/{period}")
    assert printed.returncode == 0
    assert pdf.read_bytes().startswith(b"%PDF")


async def test_pages_read_well_without_styles(served: tuple[App, str],
                                              tmp_path: Path) -> None:
    """As a text browser sees it: the content is in the markup, in reading order, with
    the navigation first and a skip link to the main content."""
    _app, base = served
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.send("Emulation.setEmulatedMedia", media="print")
        await page.navigate(f"{base}/log")
        text = await page.text()
        assert "The current signed head" in text and "How to verify" in text
        await page.send("Emulation.setEmulatedMedia", media="")
        # Disable every stylesheet and read the page in document order.
        await page.evaluate("[...document.styleSheets].forEach(s => s.disabled = true)")
        plain = await page.text()
        assert plain.index("Skip to the content") < plain.index("Privacy center") < plain.index(
            "The audit log")
        assert await page.evaluate("document.documentElement.lang") == "en"
        # Every form field has a label.
        await page.navigate(f"{base}/account/login")
        unlabelled = await page.evaluate(
            "[...document.querySelectorAll('input:not([type=hidden])')]"
            ".filter(i => !i.labels || i.labels.length === 0).length")
        assert unlabelled == 0
