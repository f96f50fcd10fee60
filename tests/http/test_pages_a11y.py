"""Every web page at phone (390 px) and desktop (1280 px) width in headless Chromium:
nothing wider than the screen, and no serious or critical finding of axe-core (the
engine behind the browsers' own accessibility audits) against WCAG 2.1 A and AA
(issue 15 point 8)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chromium_driver import Page, browser_page, find_chromium
from test_pages_browser import BOB, legal_request

from letterlock.app import App
from letterlock.services.transparency.report import Period
from support import axe
from support.env import PASSWORD
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

WIDTHS = (390, 1280)
PUBLIC = ("/", "/transparency", "/transparency/{period}", "/transparency/canary", "/log",
          "/docs", "/no-such-page", "/account/login")
ACCOUNT = ("/account", "/account/access", "/account/legal", "/account/filters",
           "/account/addresses", "/account/vacation", "/account/junk",
           "/account/export", "/account/password", "/account/encryption")
_RUN_AXE = """(async () => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                    'best-practice']},
    resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
         + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
})()"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    try:
        return axe.source()
    except (OSError, ValueError) as exc:
        pytest.skip(f"axe-core {axe.VERSION} is not cached and cannot be fetched: {exc}")


@pytest.fixture
async def served(app: App) -> AsyncIterator[str]:
    ref, _ = await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    await app.delivery.deliver(
        f"From: alice@example.org\r\nTo: {BOB}\r\nSubject: note\r\n\r\nHello.\r\n".encode(),
        [ref])
    matter = await app.legal.file(legal_request(BOB), "lee")
    await app.legal.decide(matter.id, "lee")
    async with served_at(app) as url:
        yield url


async def _check(page: Page, url: str, source: str) -> list[str]:
    """What is wrong with the page at ``url`` at each width."""
    problems = []
    for width in WIDTHS:
        await page.send("Emulation.setDeviceMetricsOverride", width=width, height=900,
                        deviceScaleFactor=1, mobile=width < 600)
        await page.navigate(url)
        wide = await page.evaluate("document.documentElement.scrollWidth")
        if wide > width:
            problems.append(f"{url} at {width} px: {wide} px wide")
        await page.send("Runtime.evaluate", expression=source)
        found = await page.send("Runtime.evaluate", expression=_RUN_AXE, awaitPromise=True,
                                returnByValue=True)
        value = found["result"].get("value")
        assert isinstance(value, list), json.dumps(found)[:500]
        problems += [f"{url} at {width} px: {v}" for v in value]
    await page.send("Emulation.clearDeviceMetricsOverride")
    return problems


async def test_every_page_fits_a_phone_and_passes_axe(served: str, tmp_path: Path,
                                                      axe_source: str) -> None:
    base = served
    period = Period.containing(datetime.now(UTC).date())
    assert CHROMIUM is not None
    problems: list[str] = []
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.send("Page.setBypassCSP", enabled=True)  # lets the test inject axe
        for path in PUBLIC:
            problems += await _check(page, base + path.format(period=period), axe_source)
        await page.navigate(f"{base}/account/login")
        await page.type_into("#address", BOB)
        await page.type_into("#password", PASSWORD)
        await page.press_enter_and_wait()
        assert await page.path() == "/account"
        for path in ACCOUNT:
            problems += await _check(page, base + path, axe_source)
    assert problems == [], "\n".join(problems)
