"""The pages in a text browser (w3m): every page reads in order without styles or
script, forms show their labels, and the privacy center is usable as text."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from letterlock.app import App
from support.env import PASSWORD
from support.http_served import served_at

W3M = shutil.which("w3m")
pytestmark = pytest.mark.skipif(W3M is None,
                                reason="w3m is not installed (apt-get install w3m)")
BOB = "bob@example.test"


async def dump(target: str, home: Path) -> str:
    """``w3m -dump``: the page as a text browser shows it (links numbered off)."""
    assert W3M is not None
    proc = await asyncio.create_subprocess_exec(
        W3M, "-dump", "-cols", "100", "-T", "text/html", "-O", "UTF-8", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(home), "LANG": "C.UTF-8"})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode("utf-8")


@pytest.fixture
async def base(app: App) -> AsyncIterator[str]:
    ref, _ = await app.accounts.create(BOB, "us-east", PASSWORD)
    await app.delivery.deliver(b"From: a@example.org\r\nSubject: hi\r\n\r\nHi.\r\n", [ref])
    async with served_at(app) as url:
        yield url


async def test_public_pages_as_text(base: str, tmp_path: Path) -> None:
    for path, words in (("/", ["Your email belongs to you", "Open your privacy center"]),
                        ("/transparency", ["Transparency reports", "Half-year"]),
                        ("/transparency/canary", ["Warrant canary", "we have not received"]),
                        ("/log", ["The current signed head", "How to verify"]),
                        ("/account/login", ["Mail address", "Mail password", "Log in"])):
        text = await dump(base + path, tmp_path)
        for word in words:
            assert word in text, (path, word)
        # Navigation first, then the page; nothing hidden behind styles or script.
        assert text.index("Privacy center") < text.index(words[0]), path


async def test_privacy_center_as_text(base: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=base) as c:
        form = await c.get("/account/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        await c.post("/account/login", data={"csrf": token.group(1), "address": BOB,
                                             "password": PASSWORD})
        pages = {p: (await c.get(p)).text for p in (
            "/account", "/account/access", "/account/legal", "/account/export",
            "/account/encryption", "/account/password")}
    expected = {
        "/account": ["Where your mail lives", "us-east", "the United States",
                     "What is sealed, and what is not", "INBOX"],
        "/account/access": ["The operator created your account", "Download the proof"],
        "/account/legal": ["You have no notices"],
        "/account/export": ["Download all my mail (mbox)"],
        "/account/encryption": ["End-to-end encryption", "Your OpenPGP public key",
                                "Encrypt new mail to this key"],
        "/account/password": ["Current password", "New password again", "Change password"],
    }
    for path, html in pages.items():
        file = tmp_path / "page.html"
        file.write_text(html, encoding="utf-8")
        text = await dump(str(file), tmp_path)
        for word in expected[path]:
            assert word in text, (path, word)
        assert f"Logged in as {BOB}" in text and "Log out" in text, path
