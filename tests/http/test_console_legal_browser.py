"""The legal console in headless Chromium (Debian's ``chromium``) against the
application served by uvicorn on a loopback port, four-eyes on: a matter filed by one
legal operator is found in the queue, opened and decided by a second in the browser,
approved by an admin, its package downloaded and its audit trail read with the three
names; the queue, matter and trail pages fit a phone (390 px) and pass axe-core for
an admin and an auditor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chromium_driver import Page, browser_page, find_chromium, screenshot_dir
from test_console_legal import FOUR_EYES, PASSWORD, populate, request
from test_pages_a11y import _check, axe_source  # noqa: F401 - the fixture is used

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.services.legal.production import verify_package
from support.env import make_config
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

@pytest.fixture
def config(home: Path) -> config_mod.Config:
    return make_config(home, **FOUR_EYES)


@pytest.fixture
async def served(app: App) -> AsyncIterator[str]:
    await populate(app)
    async with served_at(app) as url:
        yield url


async def sign_in(page: Page, base: str, name: str) -> None:
    await page.navigate(f"{base}/console/login")
    await page.type_into("#name", name)
    await page.type_into("#password", PASSWORD)
    await page.press_enter_and_wait()
    assert await page.path() == "/console", await page.text()


async def sign_out(page: Page) -> None:
    await page.click_and_wait("div.who form button")


async def follow(page: Page, selector: str) -> None:
    """Follow a link with the keyboard (focus, Enter): a matter id in the queue wraps at
    its hyphens, and the centre of its box falls between the lines."""
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
    await page.press_enter_and_wait()


async def download(page: Page, selector: str, into: Path) -> Path:
    """Click the download link ``selector`` and wait until Chromium saved the file in
    ``into``; returns it."""
    into.mkdir(parents=True, exist_ok=True)
    await page.send("Page.setDownloadBehavior", behavior="allow", downloadPath=str(into))
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
    begun = await page.wait_event("Page.downloadWillBegin")
    name = begun["params"]["suggestedFilename"]
    while True:
        progress = await page.wait_event("Page.downloadProgress")
        state = progress["params"]["state"]
        assert state != "canceled", progress
        if state == "completed":
            return into / name


async def test_a_matter_decided_approved_and_downloaded_in_the_browser(
        served: str, app: App, tmp_path: Path) -> None:
    matter = await app.legal.file(request(categories=("subscriber", "content")), "lou")
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await sign_in(page, served, "lee")
        await page.click_and_wait('nav.tabs a[href="/console/legal"]')
        assert await page.path() == "/console/legal"
        assert matter.id in await page.text()
        await follow(page, f'#matters a[href="/console/legal/{matter.id}"]')
        text = await page.text()
        assert "The recommendation" in text and "The cited policies, in plain words" in text
        assert await page.evaluate("document.querySelector('#choice-accept').checked")
        await page.screenshot(shots / "legal-matter.png")
        await page.screenshot(shots / "legal-matter-phone.png", width=390)
        await page.click_and_wait("#decide-form button[type=submit]")
        text = await page.text()
        assert "lee proposed the decision" in text and "Pending approval" in text
        assert await page.evaluate("document.querySelector('#approve-form') === null")
        await sign_out(page)

        await sign_in(page, served, "root")
        await page.navigate(f"{served}/console/legal")
        row = await page.evaluate(
            "[...document.querySelectorAll('#matters tbody tr')].map(r => r.innerText)"
            ".join('\\n')")
        assert "awaiting-approval" in row and "proposed by lee" in row
        await follow(page, f'#matters a[href="/console/legal/{matter.id}"]')
        await page.click_and_wait("#approve-form button")
        text = await page.text()
        assert "root approved the decision" in text
        assert "Decided by lee" in text
        saved = await download(page, "#package-list a", tmp_path / "downloads")
        assert saved.name == f"{matter.id}.zip"
        check = verify_package(saved)  # the signed package, every item's hash
        assert check.ok and check.matter == matter.id and check.items > 0, check

        await page.click_and_wait(f'a[href="/console/legal/{matter.id}/trail"]')
        rows = await page.evaluate(
            "[...document.querySelectorAll('#trail li')].map(r =>"
            " [r.querySelector('code').innerText, r.querySelector('.actor').innerText])")
        assert ["legal:matter:filed", "lou"] in rows
        assert ["legal:decision:proposed", "lee"] in rows
        assert ["legal:decision:approved", "root"] in rows
        assert ["legal:production:executed", "root"] in rows
        await page.screenshot(shots / "legal-trail-phone.png", width=390)
    assert (await app.legal.show(matter.id)).state in ("executed", "notified")


async def test_legal_pages_fit_a_phone_and_pass_axe(served: str, app: App, tmp_path: Path,
                                                    axe_source: str) -> None:  # noqa: F811
    """No serious or critical axe-core finding and nothing wider than 390 or 1280 px on
    the queue, a matter awaiting approval (every section filled: facts, policies,
    R-codes, proposal, forms) and its trail, for an admin (forms) and an auditor."""
    matter = await app.legal.file(
        request("us-subpoena", ("subscriber", "content"),
                date_range={"from": "2025-01-01", "to": "2025-06-30"},
                gag={"until": "2031-01-01T00:00:00Z"}), "lou")
    warrant = await app.legal.file(request(), "lou")
    await app.legal.decide(warrant.id, "lee")  # awaiting approval
    paths = ["/console/legal", "/console/legal?state=all", f"/console/legal/{matter.id}",
             f"/console/legal/{warrant.id}", f"/console/legal/{warrant.id}/trail",
             "/console/legal/M-nope"]
    assert CHROMIUM is not None
    problems: list[str] = []
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.send("Page.setBypassCSP", enabled=True)  # lets the test inject axe
        for name in ("root", "ada"):
            await sign_in(page, served, name)
            for path in paths:
                problems += await _check(page, served + path, axe_source)
            await page.navigate(f"{served}/console")
            await sign_out(page)
    assert problems == [], "\n".join(problems)
