"""Regression (issue 14, point 5): the privacy center's legal tab showed only the
notices already sent: a preservation hold on the account (which keeps deleted mail)
was nowhere on it, though the access feed listed it, and the two pages described the
same matter differently. Now the tab lists the holds in force and, per matter, the
access feed's own entries with the feed's words; what a gag hides stays hidden on
both."""

from __future__ import annotations

import re
from typing import Any

from test_pages import BOB, Site, legal_request, login, site

from letterlock.http.account_pages import describe
from letterlock.services.transparency.access_feed import AccessFeed

__all__ = ["site"]


def preservation(target: str, **changes: Any) -> dict[str, Any]:
    return {**legal_request(target, ["content"]), "instrument": "us-preservation",
            "action": "preserve", **changes}


async def _feed_of(site: Site, matter: str) -> list[dict[str, Any]]:
    """The access feed's entries about ``matter``, as the access page describes them."""
    feed = AccessFeed(site.app.config.control_dir / "audit")
    try:
        page = await feed.page_async(BOB, -1, 500)
    finally:
        feed.close()
    return [describe(e) for e in page.events if e["event"].get("matter") == matter]


async def test_legal_tab_shows_holds_and_the_feeds_entries(site: Site) -> None:
    app = site.app
    held = await app.legal.file(preservation(BOB), "lee")
    held = await app.legal.decide(held.id, "lee")
    assert held.holds and held.notices == ()  # preserving: nobody is told
    gagged = await app.legal.file(preservation(BOB, gag={"until": "2100-01-01T00:00:00Z"}),
                                  "lee")
    gagged = await app.legal.decide(gagged.id, "lee")
    assert gagged.holds
    produced = await app.legal.file(legal_request(BOB, ["subscriber"]), "lee")
    await app.legal.decide(produced.id, "lee")
    await app.audit.flush()  # type: ignore[attr-defined]

    async with site.client() as c:
        await login(c)
        page = (await c.get("/account/legal")).text
        access = (await c.get("/account/access")).text

    # The hold in force, with its expiry; the gagged one nowhere.
    holds = page.split("<h2>Requests</h2>")[0]
    assert "Preservation holds on your account now" in holds
    assert held.id in holds and held.holds[0].expires_at.strftime("%Y-%m-%d") in holds
    assert gagged.id not in page and gagged.id not in access
    # Each matter's entries: the access feed's entries, in the feed's words.
    for matter in (held.id, produced.id):
        entries = await _feed_of(site, matter)
        assert entries, matter
        section = page.split(f"Legal matter <code>{matter}</code>")[1]
        section = section.split('<li class="card matter">')[0]
        shown = [int(i) for i in re.findall(r'proof\.json" download>#(\d+)</a>', section)]
        assert shown == [e["index"] for e in entries]
        for entry in entries:
            assert entry["words"] in section and entry["words"] in access
    assert "A legal hold was placed: deleted mail is kept" in page
    # Plain words only: no event codes, no detail keys, no server file paths.
    for text in (page, access):
        assert not re.search(r"\b(legal|admin|account|log):[a-z-]+:[a-z-]+", text), text
        assert "<dt>Package</dt>" not in text and "/legal/" not in text
    assert "<dt>Kind of legal order</dt><dd>us-warrant</dd>" in access
    assert "<dt>Legal policy applied</dt>" in access
    # The notice of the production is on the tab too.
    assert f"Reference: {produced.id}" in page
