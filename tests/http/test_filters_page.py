"""The privacy center's Filters tab (issue 16 point 3): with no running filter it
says the server reads nothing for filtering; with one it lists exactly what that
script reads (envelope, the named header fields, body, size, sending mail) and that
the server holds a copy of that one script; another account's scripts never show."""

from __future__ import annotations

import re

from test_pages import BOB, CAROL, PASSWORD, Site, login, site

__all__ = ["site"]

SCRIPT = ('require ["fileinto", "envelope", "vacation"];\r\n'
          'if header :contains ["Subject", "List-Id"] "crocodile" { fileinto "Zoo"; }\r\n'
          'if envelope :is "from" "boss@example.org" { vacation "Away."; }\r\n')


def words(html: str) -> str:
    return " ".join(html.split())


async def test_filters_tab_tells_what_the_server_reads(site: Site) -> None:
    app = site.app
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/filters")
        assert page.status_code == 200
        assert "server reads nothing of your mail for filtering" in words(page.text)
        bob = await app.accounts.authenticate(BOB, PASSWORD)
        await app.filters.put(bob, "sorting", SCRIPT, via="test")
        await app.filters.put(bob, "spare", "keep;\r\n", via="test")
        page = await c.get("/account/filters")
        assert "sorting" in page.text and "spare" in page.text
        assert "reads nothing" in words(page.text)  # stored, none running yet
        await app.filters.activate(bob, "sorting", via="test")
        page = await c.get("/account/filters")
    text = words(page.text)
    assert "reads nothing" not in text
    assert "<strong>sorting</strong>" in text
    shown = re.search(r"Header fields: <strong>([^<]*)</strong>", text)
    assert shown is not None
    named = shown.group(1).split(", ")
    # What the script tests, and what vacation reads to decide whether to answer.
    assert {"subject", "list-id", "auto-submitted"} <= set(named)
    assert named == sorted(named) and "received" not in named
    assert "Envelope sender and recipient: <strong>yes</strong>" in text
    assert "The message body: no" in text
    assert "(forward, auto-reply or refuse): <strong>yes</strong>" in text
    carol = await app.accounts.authenticate(CAROL, PASSWORD)
    assert await app.filters.list(carol.ref) == []
