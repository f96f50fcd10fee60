"""The privacy center's Addresses tab (issue 16 point 5) through httpx against the real
application: the account's own address, its aliases, the groups it belongs to, a
catch-all it gets, what it may send as and the domain aliases its addresses work in;
"may send from it" agrees with what submission enforces (AddressService.owns); the
sub-addressing rule in force is stated; another account's addresses never show."""

from __future__ import annotations

import re

from test_pages import BOB, CAROL, PASSWORD, Site, login, site

__all__ = ["site"]


def rows(html: str) -> dict[str, tuple[str, str, str]]:
    """address -> (kind, reaches you, may send)."""
    out = {}
    for kind, address, receives, sends in re.findall(
        r'<tr data-kind="([^"]+)">\s*<th scope="row"><code class="id">([^<]+)</code>'
        r"</th>\s*<td>.*?</td>\s*<td>([^<]+)</td>\s*<td>(?:<strong>)?([^<]+)",
        html,
        re.S,
    ):
        out[address] = (kind, receives, sends)
    return out


async def test_the_tab_lists_every_address_and_which_may_send(site: Site) -> None:
    app = site.app
    await app.addresses.add_alias("robert@example.test", BOB)
    await app.addresses.add_group("team@example.test", [BOB, CAROL])
    await app.addresses.set_catch_all("example.test", BOB)
    await app.addresses.grant_send_as(BOB, "billing@example.test")
    await app.addresses.add_domain_alias("example.net", "example.test")
    await app.addresses.add_alias("caroline@example.test", CAROL)
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/addresses")
    assert page.status_code == 200
    found = rows(page.text)
    assert found == {
        BOB: ("primary", "Yes", "Yes"),
        "robert@example.test": ("alias", "Yes", "Yes"),
        "team@example.test": ("group", "Yes", "No"),
        "@example.test": ("catch-all", "Yes", "No"),
        "billing@example.test": ("send-as", "No", "Yes"),
        "@example.net": ("domain-alias", "Yes", "Yes"),
    }
    assert "caroline" not in page.text  # Carol's alias is hers alone
    assert "shared with 1 other account" in page.text  # the group, without names
    assert CAROL not in page.text
    # What the page says of sending is what submission enforces.
    bob = await app.accounts.resolve(BOB)
    examples = {"@example.test": "nobody@example.test", "@example.net": "bob@example.net"}
    for address, (_kind, _receives, sends) in found.items():
        assert await app.addresses.owns(bob, examples.get(address, address)) == (sends == "Yes"), (
            address
        )
    text = " ".join(page.text.split())
    assert "Sub-addressing is <strong>on</strong>" in text
    assert '<code class="id">bob+news@example.test</code>' in text


async def test_an_account_with_no_extra_addresses(site: Site) -> None:
    async with site.client() as c:
        await login(c, CAROL, PASSWORD)
        page = await c.get("/account/addresses")
    assert rows(page.text) == {CAROL: ("primary", "Yes", "Yes")}
    assert "Addresses are handed out by your operator" in " ".join(page.text.split())
