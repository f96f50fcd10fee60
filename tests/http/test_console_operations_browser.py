"""The console's Backups, Audit log and Mail export pages in headless Chromium against
the application served by uvicorn: an admin backs a region up from the page, verifies
it and the audit log by clicking, and the backup the page made is one `letterlock
restore` (the command line, in a process of its own) accepts into a fresh HOME, where
the account's mail opens with its owner's password, flags kept. Every page passes
axe-core and fits 390 and 1280 px, before and after."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chromium_driver import Page, browser_page, find_chromium, screenshot_dir
from test_console_operations import CAROL, CAROL_PW, maildir
from test_pages_a11y import _check, axe_source  # noqa: F401 - the fixture is used

from letterlock.app import App, initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.mail import folder_transfer
from support.cli import letterlock
from support.env import make_config
from support.http_served import served_at

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")

PASSWORD = "operator password"
PAGES = ("/console/backups", "/console/audit", "/console/mail")


@pytest.fixture
async def served(app: App) -> AsyncIterator[str]:
    await app.operators.add("root", "admin", PASSWORD, actor="test")
    ref, _code = await app.accounts.create(CAROL, "us-east", CAROL_PW)
    source = maildir(app.config.backup_root, "carol-old")
    await folder_transfer.import_tree(app.delivery, app.mailboxes, ref, source, audit=app.audit)
    async with served_at(app) as url:
        yield url


async def sign_in(page: Page, served: str) -> None:
    await page.navigate(f"{served}/console/login")
    await page.type_into("#name", "root")
    await page.type_into("#password", PASSWORD)
    await page.press_enter_and_wait()
    assert await page.path() == "/console"


async def test_a_backup_made_in_the_page_is_restored_by_the_cli(
        served: str, app: App, tmp_path: Path, axe_source: str) -> None:  # noqa: F811
    assert CHROMIUM is not None
    shots = screenshot_dir(tmp_path / "shots")
    problems: list[str] = []
    async with browser_page(CHROMIUM, tmp_path / "profile") as page:
        await page.send("Page.setBypassCSP", enabled=True)  # lets the test inject axe
        await sign_in(page, served)
        for path in PAGES:  # empty: no backup, never verified
            problems += await _check(page, served + path, axe_source)

        await page.click_and_wait('nav.tabs a[href="/console/backups"]')
        assert "never backed up" in await page.text()
        await page.evaluate("document.querySelector('#backup-region').value = 'us-east'")
        await page.click_and_wait('form[action="/console/backups"] button')
        assert await page.path() == "/console/backups"
        assert "Backing up region us-east into us-east-" in await page.text()
        for _ in range(300):  # it runs in the background; the link reloads the page
            if not await page.evaluate("!!document.querySelector('section.job a')"):
                break
            await page.click_and_wait("section.job a")
        text = await page.text()
        assert "Backed up region us-east into us-east-" in text, text
        assert "2 message(s)" in text
        command = await page.evaluate("document.querySelector('pre.command').innerText")
        await page.click_and_wait('form[action="/console/backups/verify"] button')
        assert "is whole: its manifest and all" in await page.text()
        await page.screenshot(shots / "console-backups.png")
        await page.screenshot(shots / "console-backups-phone.png", width=390)

        await page.click_and_wait('nav.tabs a[href="/console/audit"]')
        await page.click_and_wait('form[action="/console/audit/verify"] button')
        text = await page.text()
        assert "The audit log is intact" in text and "Intact, checked" in text, text
        for path in PAGES:  # with a backup listed and a verification shown
            problems += await _check(page, served + path, axe_source)
    assert problems == [], "\n".join(problems)

    # The command the page gives, run as it says, in a fresh HOME (the server there is
    # stopped: it never ran).
    words = shlex.split(command)
    assert words[:2] == ["letterlock", "--home"] and words[2] == str(app.config.home)
    assert words[3:5] == ["restore", "us-east"]
    backup = Path(words[5])
    assert backup.parent == app.config.backup_root
    fresh = tmp_path / "fresh"
    await initialise(make_config(fresh), InitOptions())
    done = await asyncio.to_thread(letterlock, fresh, *words[3:])
    assert "restored region us-east from backup us-east-" in done.stdout, done.stdout
    assert "1 account(s), 2 message(s)" in done.stdout
    async with open_app(make_config(fresh)) as restored:
        session = await restored.accounts.authenticate(CAROL, CAROL_PW)
        boxes = {b.name: b for b in await restored.mailboxes.list_mailboxes(session)}
        inbox = await restored.mailboxes.messages(session, boxes["INBOX"].id)
        archive = await restored.mailboxes.messages(session, boxes["Archive"].id)
        assert [sorted(m.flags) for m in inbox] == [["\\Flagged", "\\Seen"]]
        assert len(archive) == 1
        bodies = await restored.mailboxes.bodies(session, inbox)
        assert b"Meet at noon." in bodies[inbox[0].uid]
