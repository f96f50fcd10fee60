"""The Addresses, Vacation and Junk tabs in headless Chromium (issue 16 point 5), the
way a person uses them: reached from the tab bar, the vacation form filled in by
typing and clicking, a mistake shown next to the form with what was typed kept, the
saved rule read back; every tab fits a phone-sized screen (390 px). The axe check of
these pages is in test_pages_a11y.py with the other pages. The Junk tab's choice is
clicked and saved too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chromium_driver import Page, browser_page, find_chromium, screenshot_dir

from letterlock.app import App
from letterlock.services.mail.filters.junk_filing import junk_choice
from letterlock.services.mail.filters.vacation_form import OWN_SCRIPT, read_section
from support.env import PASSWORD
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

BOB = "bob@example.test"
ALIAS = "robert@example.test"
TABS = {"Addresses": "/account/addresses", "Vacation": "/account/vacation", "Junk": "/account/junk"}


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[App, str]]:
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    await app.addresses.add_alias(ALIAS, BOB)
    async with served_at(app) as url:
        yield app, url


async def fits_a_phone(page: Page) -> int:
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=390,
        height=800,
        deviceScaleFactor=1,
        mobile=True,
    )
    try:
        return int(await page.evaluate("document.documentElement.scrollWidth"))
    finally:
        await page.send("Emulation.clearDeviceMetricsOverride")


async def set_value(page: Page, selector: str, value: str) -> None:
    """A date field takes its value as a string (typing into one is locale-bound)."""
    await page.evaluate(
        f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}"
    )


async def log_in(page: Page, base: str) -> None:
    await page.navigate(f"{base}/account/login")
    await page.type_into("#address", BOB)
    await page.type_into("#password", PASSWORD)
    await page.press_enter_and_wait()
    assert await page.path() == "/account"


async def test_settings_tabs_in_chromium(served: tuple[App, str], tmp_path: Path) -> None:
    app, base = served
    shots = screenshot_dir(tmp_path / "shots")
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await log_in(page, base)

        for label, path in TABS.items():
            await page.click_and_wait(f'nav.tabs a[href="{path}"]')
            assert await page.path() == path
            current = await page.evaluate(
                "document.querySelector('nav.tabs a[aria-current=\"page\"]').textContent"
            )
            assert current == label
            assert await fits_a_phone(page) <= 390, path
            await page.screenshot(shots / f"account-{label.lower()}.png")
            await page.screenshot(shots / f"account-{label.lower()}-phone.png", width=390)

        await page.click_and_wait('nav.tabs a[href="/account/addresses"]')
        text = await page.text()
        assert ALIAS in text and "Sub-addressing is on" in text

        # The vacation form: the alias is offered as one of "my" addresses.
        await page.click_and_wait('nav.tabs a[href="/account/vacation"]')
        assert await page.evaluate("document.querySelector('#addresses').value") == ALIAS
        assert "Vacation replies are off" in await page.text()

        # The Junk tab's choice, clicked and saved.
        await page.click_and_wait('nav.tabs a[href="/account/junk"]')
        assert await page.evaluate("document.querySelector('#junk-folder').checked") is True
        await page.evaluate("document.querySelector('#junk-inbox').click()")
        await page.click_and_wait("#junk-form button[type=submit]")
        assert "Junk now stays in your Inbox, marked as junk." in await page.text()
        assert await page.evaluate("document.querySelector('#junk-inbox').checked") is True
        assert await fits_a_phone(page) <= 390
    ref = await app.accounts.resolve(BOB)
    assert await junk_choice(app.filters, ref) == "inbox"


async def test_vacation_form_filled_in_chromium(served: tuple[App, str], tmp_path: Path) -> None:
    app, base = served
    assert CHROMIUM is not None
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await log_in(page, base)
        await page.navigate(f"{base}/account/vacation")

        await page.evaluate("document.querySelector('#on').click()")
        await page.type_into("#subject", "Away until March")
        await page.type_into("#text", "I am back on 2 March.")
        await page.evaluate("document.querySelector('#days').value = ''")
        await page.type_into("#days", "5")
        await set_value(page, "#start", "2030-03-02")
        await set_value(page, "#end", "2030-03-01")
        await page.click_and_wait("#vacation-form button[type=submit]")
        # A mistake is said in words, the field marked, what was typed kept.
        assert "The last day comes before the first day." in await page.text()
        assert (
            await page.evaluate("document.querySelector('#end').getAttribute('aria-invalid')")
            == "true"
        )
        assert await page.evaluate("document.querySelector('#subject').value") == "Away until March"
        assert await page.evaluate("document.querySelector('#on').checked") is True
        assert await fits_a_phone(page) <= 390

        await set_value(page, "#end", "2030-03-20")
        await page.click_and_wait("#vacation-form button[type=submit]")
        text = await page.text()
        assert "Vacation replies are on." in text
        assert "from 2030-03-02 until 2030-03-20" in text
        assert f"run by your script {OWN_SCRIPT}" in text
        # What the rule lets the server read is listed, as on the Filters tab.
        assert "It may send mail for you (forward, auto-reply or refuse): yes" in text

        # Reloaded, the form shows the saved rule.
        await page.navigate(f"{base}/account/vacation")
        assert await page.evaluate("document.querySelector('#days').value") == "5"
        assert await page.evaluate("document.querySelector('#start').value") == "2030-03-02"
    session = await app.accounts.authenticate(BOB, PASSWORD)
    saved = read_section(await app.filters.get(session, OWN_SCRIPT))
    assert (saved.subject, saved.text, saved.days, saved.addresses) == (
        "Away until March",
        "I am back on 2 March.",
        5,
        (ALIAS,),
    )
