"""The web pages against the real application through httpx: the privacy center
(login, logout, CSRF, session expiry, every tab, the mbox export, password change),
the public transparency, canary and log pages, and that no page shows one account's
data to another."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pysequoia import Tsk

from letterlock.app import App
from letterlock.audit import verify
from letterlock.http.server import _open_access_feed, make_api
from letterlock.http.web_sessions import COOKIE, SessionStore
from letterlock.services.mail.transfer import export_mbox, read_mbox, to_crlf
from letterlock.services.operations import logs
from letterlock.services.transparency.report import Period
from support.env import PASSWORD

BOB = "bob@example.test"
CAROL = "carol@example.test"
BASE = "http://letterlock.test"
IDLE_S = 600.0


class Clock:
    """A hand-driven monotonic clock for session expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    app: App
    api: Any
    sessions: SessionStore
    clock: Clock

    def client(self, base_url: str = BASE) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.api),
                                 base_url=base_url)


def legal_request(target: str, categories: list[str]) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "received_at": now, "served_at": now,
        "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                   "judge_validated": True, "verified": True},
        "instrument": "us-warrant", "action": "produce", "categories": categories,
        "targets": [target],
        "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
        "emergency": False, "gag": None, "renewal_of_served_at": None,
    }


MESSAGES = [
    b"From: alice@example.org\r\nTo: bob@example.test\r\nSubject: first\r\n\r\nHello Bob.\r\n",
    # A body line starting with "From " must survive the mbox round trip (quoted).
    b"From: alice@example.org\r\nTo: bob@example.test\r\nSubject: quoting\r\n\r\n"
    b"From the top.\r\n>From a quote.\r\nEnd\r\n",
    b"From: dave@example.net\r\nTo: bob@example.test\r\nSubject: no final newline\r\n\r\n"
    b"last line",
]


@pytest.fixture
async def site(app: App) -> AsyncIterator[Site]:
    bob, _ = await app.accounts.create(BOB, "us-east", PASSWORD)
    carol, _ = await app.accounts.create(CAROL, "eu-dublin", PASSWORD)
    for raw in MESSAGES:
        await app.delivery.deliver(raw, [bob])
    await app.mailboxes.append(bob, "Archive", b"From: bob@example.test\r\nSubject: kept"
                               b"\r\n\r\nArchived.\r\n", ["\\Seen"], None)
    await app.delivery.deliver(b"From: eve@example.org\r\nTo: carol@example.test\r\n"
                               b"Subject: carol-secret-subject\r\n\r\ncarol only\r\n", [carol])
    clock = Clock()
    sessions = SessionStore(idle_s=IDLE_S, clock=clock)
    feed = _open_access_feed(app)
    api = make_api(app, access_feed=feed, sessions=sessions)
    yield Site(app, api, sessions, clock)
    if feed is not None:
        await asyncio.to_thread(feed.close)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


async def login(c: httpx.AsyncClient, address: str = BOB,
                password: str = PASSWORD) -> httpx.Response:
    form = await c.get("/account/login")
    assert form.status_code == 200
    return await c.post("/account/login", data={"csrf": csrf_of(form.text),
                                                 "address": address, "password": password})


# -- public pages ----------------------------------------------------------------------


async def test_start_page_links_everything(site: Site) -> None:
    async with site.client() as c:
        page = await c.get("/")
    assert page.status_code == 200
    for link in ('href="/account"', 'href="/transparency"', 'href="/transparency/canary"',
                 'href="/log"', "/api/legal/matters", "operator add"):
        assert link in page.text
    assert "<script" not in page.text.lower()


async def test_unknown_half_year_is_404_and_named_once_escaped(site: Site) -> None:
    async with site.client() as c:
        page = await c.get("/transparency/1999-H3<b>&x")
    assert page.status_code == 404
    assert "There is no half-year called 1999-H3&lt;b&gt;&amp;x." in page.text
    assert "&amp;lt;" not in page.text and "<b>" not in page.text


async def test_every_page_forbids_scripts_and_framing(site: Site) -> None:
    async with site.client() as c:
        await login(c)
        for path in ("/", "/transparency", "/transparency/canary", "/log", "/account",
                     "/account/access", "/account/legal", "/account/filters",
                     "/account/export",
                     "/account/encryption", "/account/password"):
            page = await c.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html"), path
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
            assert "script-src" not in csp, path  # falls back to 'none'
            assert page.headers["cache-control"] == "no-store", path
            assert "<script" not in page.text.lower(), path
            # No third-party assets: every src/href is local (or a fragment).
            for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
                assert ref.startswith(("/", "#")), (path, ref)
            assert '<html lang="en">' in page.text and 'id="main"' in page.text


async def test_stylesheet_and_icon_are_served(site: Site) -> None:
    async with site.client() as c:
        css = await c.get("/static/style.css")
        icon = await c.get("/static/favicon.svg")
        missing = await c.get("/static/nothing.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@media print" in css.text
    assert "max-age" in css.headers["cache-control"]
    assert icon.headers["content-type"] == "image/svg+xml"
    assert missing.status_code == 404


async def test_transparency_lists_periods_and_serves_each_format(site: Site) -> None:
    app = site.app
    matter = await app.legal.file(legal_request(BOB, ["subscriber"]), "lee")
    await app.legal.decide(matter.id, "lee")
    period = str(Period.containing(datetime.now(UTC).date()))
    async with site.client() as c:
        index = await c.get("/transparency")
        report = await c.get(f"/transparency/{period}")
        as_csv = await c.get(f"/transparency/{period}.csv")
        as_json = await c.get(f"/transparency/{period}.json")
        as_file = await c.get(f"/transparency/{period}.html")
        bad = await c.get("/transparency/2025-H3")
        bad_csv = await c.get("/transparency/nonsense.csv")
    assert index.status_code == 200
    assert f'href="/transparency/{period}"' in index.text
    assert f'href="/transparency/{period}.csv"' in index.text
    assert f'href="/transparency/{period}.json"' in index.text
    # The HTML report is the one the service computes, with a way back.
    assert report.status_code == 200
    assert f"Transparency report {period}" in report.text
    assert 'href="/transparency"' in report.text
    # In the site's layout (its stylesheet, no inline style); the standalone file,
    # a download, carries its own.
    assert 'href="/static/style.css' in report.text and "<style>" not in report.text
    assert "'unsafe-inline'" not in report.headers["content-security-policy"]
    assert f'href="/transparency/{period}.html"' in report.text
    assert as_file.headers["content-disposition"].endswith(f'transparency-{period}.html"')
    assert "<style>" in as_file.text and 'name="viewport"' in as_file.text
    assert "'unsafe-inline'" in as_file.headers["content-security-policy"]
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.startswith(f"# letterlock transparency report {period}")
    assert "US," in as_csv.text
    doc = as_json.json()
    assert doc["period"] == period and doc["totals"]["requests"] == 1
    assert doc["rows"][0]["country"] == "US"
    head = doc["computed_at_head"]
    assert head["tree_size"] >= 1
    assert bad.status_code == 404 and "2025-H3" in bad.text
    assert bad_csv.status_code == 404


async def test_canary_page_and_signed_statement_verify(site: Site, tmp_path: Path) -> None:
    async with site.client() as c:
        page = await c.get("/transparency/canary")
        signed = await c.get("/transparency/canary.json?period=2025-H1")
    assert page.status_code == 200
    assert "we have not received any National Security Letter" in page.text
    doc = signed.json()
    assert doc["period"] == "2025-H1"
    verify.check_signed_document(doc, verify.CANARY_FORMAT)
    # The standalone verifier accepts it on the command line too.
    path = tmp_path / "canary.json"
    path.write_text(signed.text)
    run = subprocess.run([sys.executable, "-m", "letterlock.audit.verify", "canary",
                          str(path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    # A forged statement does not pass.
    doc["statements"] = doc["statements"][:-1]
    with pytest.raises(verify.VerificationError):
        verify.check_signed_document(doc, verify.CANARY_FORMAT)


async def test_log_page_shows_the_signed_head(site: Site, tmp_path: Path) -> None:
    async with site.client() as c:
        page = await c.get("/log")
        head = await c.get("/log/head.json")
        source = await c.get("/log/verify.py")
    assert page.status_code == 200
    doc = head.json()
    verify.check_head(verify.SignedHead.from_json(doc))
    assert str(doc["tree_size"]) in page.text and doc["root_hash"] in page.text
    assert doc["public_key"] in page.text
    assert "python -m letterlock.audit.verify" in page.text
    # The verifier served is a standalone file that checks the head it was served with.
    (tmp_path / "verify.py").write_bytes(source.content)
    (tmp_path / "head.json").write_text(head.text)
    run = subprocess.run([sys.executable, "verify.py", "--public-key", doc["public_key"],
                          "head", "head.json"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("OK head")


# -- login, logout, CSRF, expiry -------------------------------------------------------


async def test_login_sets_a_strict_httponly_cookie_and_logout_drops_the_session(
        site: Site) -> None:
    async with site.client() as c:
        assert (await c.get("/account")).headers["location"] == "/account/login"
        wrong = await login(c, password="not the password")
        assert wrong.status_code == 401
        assert "do not match" in wrong.text
        # The login page says how long a login's key stays cached in memory.
        assert "in its memory for up to 60 minutes after a login" in wrong.text
        unknown = await login(c, address="nobody@example.test")
        assert unknown.status_code == 401
        assert len(site.sessions) == 0
        ok = await login(c)
        assert ok.status_code == 303 and ok.headers["location"] == "/account"
        cookie = next(h for h in ok.headers.get_list("set-cookie")
                      if h.startswith(COOKIE + "="))
        attrs = cookie.lower()
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
        assert "secure" not in attrs  # plain HTTP on loopback
        assert len(site.sessions) == 1
        home = await c.get("/account")
        assert home.status_code == 200 and BOB in home.text
        # Logging in again from the login page goes straight to the account.
        assert (await c.get("/account/login")).headers["location"] == "/account"
        out = await c.post("/account/logout", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/account/login?bye=1"
        assert len(site.sessions) == 0
        after = await c.get("/account")
        assert after.status_code == 303
        bye = await c.get("/account/login?bye=1")
        assert "You are logged out" in bye.text


async def test_cookie_is_secure_behind_tls(site: Site) -> None:
    async with site.client("https://letterlock.test") as c:
        ok = await login(c)
    cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert "secure" in cookie.lower()
    async with site.client() as c:
        form = await c.get("/account/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in form.headers["set-cookie"].lower()


async def test_a_stolen_cookie_value_from_before_logout_is_useless(site: Site) -> None:
    async with site.client() as c:
        await login(c)
        sid = c.cookies[COOKIE]
        page = await c.get("/account")
        await c.post("/account/logout", data={"csrf": csrf_of(page.text)})
    async with site.client() as other:
        other.cookies.set(COOKIE, sid)
        assert (await other.get("/account")).status_code == 303
        assert (await other.get("/account/export.mbox")).status_code == 303


async def test_forms_without_the_csrf_token_are_refused(site: Site) -> None:
    async with site.client() as c:
        # Login: the token must match the login cookie (double submit).
        no_cookie = await c.post("/account/login", data={
            "csrf": "forged", "address": BOB, "password": PASSWORD})
        assert no_cookie.status_code == 403
        await c.get("/account/login")
        forged = await c.post("/account/login", data={
            "csrf": "forged", "address": BOB, "password": PASSWORD})
        assert forged.status_code == 403
        assert len(site.sessions) == 0
        await login(c)
        page = await c.get("/account/password")
        for data in ({}, {"csrf": ""}, {"csrf": "x" * 43}):
            changed = await c.post("/account/password", data={
                **data, "old": PASSWORD, "new": "another long password",
                "confirm": "another long password"})
            assert changed.status_code == 403, data
            assert "cannot be accepted" in changed.text
            out = await c.post("/account/logout", data=data)
            assert out.status_code == 403
        # JSON is not a form: refused even with the right token.
        as_json = await c.post("/account/logout", json={"csrf": csrf_of(page.text)})
        assert as_json.status_code == 403
        assert len(site.sessions) == 1
    await site.app.accounts.authenticate(BOB, PASSWORD)  # the password did not change


async def test_an_idle_session_expires(site: Site) -> None:
    async with site.client() as c:
        await login(c)
        # Activity keeps it alive past the idle limit in total.
        for _ in range(3):
            site.clock.now += IDLE_S * 0.6
            assert (await c.get("/account")).status_code == 200
        site.clock.now += IDLE_S + 1
        gone = await c.get("/account/access")
        assert gone.status_code == 303
        assert gone.headers["location"] == "/account/login?expired=1"
        notice = await c.get(gone.headers["location"])
        assert "Your session ended after 10 minutes without activity" in notice.text
        assert len(site.sessions) == 0
        # The dead cookie was dropped: the next visit is a plain login, not "expired".
        assert COOKIE not in c.cookies
        assert (await c.get("/account")).headers["location"] == "/account/login"


async def test_sessions_end_at_their_maximum_age_even_when_busy() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_age_s=300, clock=clock)
    entry = store.open(object())  # type: ignore[arg-type]
    for _ in range(9):
        clock.now += 30
        assert store.get(entry.id) is entry
    clock.now += 31
    assert store.get(entry.id) is None


# -- the privacy center's tabs ---------------------------------------------------------


async def test_where_your_mail_lives(site: Site) -> None:
    async with site.client() as c:
        await login(c)
        page = (await c.get("/account")).text
    ref = await site.app.accounts.resolve(BOB)
    assert "us-east" in page and "the United States" in page and "(US)" in page
    assert ref.record.key_id.hex() in page
    assert "What is sealed, and what is not" in page
    assert "sees a message while" in page  # the threat model, in plain words
    # ... including how long a login's key stays cached (crypto.key_cache_ttl_s).
    assert "For up to 60 minutes after a login" in page
    # Plain metadata: INBOX holds the three delivered messages, Archive one.
    assert re.search(r"INBOX</th><td class=\"num\">3</td>", page)
    assert re.search(r"Archive</th><td class=\"num\">1</td>", page)


async def test_access_feed_lists_events_with_verifiable_proofs(site: Site,
                                                               tmp_path: Path) -> None:
    app = site.app
    await app.accounts.change_password(BOB, PASSWORD, PASSWORD + "!")
    await app.accounts.change_password(BOB, PASSWORD + "!", PASSWORD)
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/access")
        assert page.status_code == 200
        assert "The operator created your account" in page.text
        assert "Your password was changed" in page.text
        links = re.findall(r'href="(/account/access/(\d+)/proof\.json)"', page.text)
        assert len(links) >= 3
        for link, index in links:
            proof = await c.get(link)
            assert proof.status_code == 200
            assert "attachment" in proof.headers["content-disposition"]
            result = verify.check_inclusion_bundle(proof.json())
            assert result.index == int(index)
        path = tmp_path / "proof.json"
        path.write_text(proof.text)
    run = subprocess.run([sys.executable, "-m", "letterlock.audit.verify", "inclusion",
                          str(path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


async def test_access_feed_pages_through_long_histories(site: Site) -> None:
    for i in range(55):
        new = f"{PASSWORD}-{i}"
        old = PASSWORD if i == 0 else f"{PASSWORD}-{i - 1}"
        await site.app.accounts.change_password(BOB, old, new)
    async with site.client() as c:
        await login(c, password=f"{PASSWORD}-54")
        first = await c.get("/account/access")
        more = re.search(r'href="/account/access\?after=(\d+)"', first.text)
        assert more, "a link to the later events"
        second = await c.get(f"/account/access?after={more.group(1)}")
    seen1 = set(re.findall(r"/account/access/(\d+)/proof", first.text))
    seen2 = set(re.findall(r"/account/access/(\d+)/proof", second.text))
    assert len(seen1) == 50 and seen2 and not seen1 & seen2
    assert len(seen1 | seen2) == 56  # created + 55 password changes


async def test_legal_notices_page(site: Site) -> None:
    app = site.app
    async with site.client() as c:
        await login(c)
        empty = await c.get("/account/legal")
        assert "You have no notices" in empty.text
        matter = await app.legal.file(legal_request(BOB, ["subscriber"]), "lee")
        await app.legal.decide(matter.id, "lee")
        page = await c.get("/account/legal")
    assert matter.id in page.text
    assert f"Reference: {matter.id}" in page.text
    notices = await app.legal.notices_for(BOB)
    assert notices and notices[0].text.split("\n")[0] in page.text


async def test_export_returns_exactly_the_stored_messages(site: Site, tmp_path: Path) -> None:
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/export")
        assert 'href="/account/export.mbox"' in page.text
        download = await c.get("/account/export.mbox")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/mbox"
    assert "attachment" in download.headers["content-disposition"]
    # Byte for byte what the CLI's exporter writes for the same account...
    session = await site.app.accounts.authenticate(BOB, PASSWORD)
    out = tmp_path / "cli.mbox"
    count = await export_mbox(site.app.mailboxes, session, out)
    assert count == len(MESSAGES) + 1
    assert download.content == out.read_bytes()
    # ... and reading it back gives every message exactly as delivered.
    got = [to_crlf(m.raw) for m in read_mbox(io.BytesIO(download.content))]
    archived = b"From: bob@example.test\r\nSubject: kept\r\n\r\nArchived.\r\n"
    expected = [to_crlf(m) for m in MESSAGES] + [archived]
    # The last message had no final newline; mbox framing adds one.
    expected[2] += b"\r\n"
    assert sorted(got) == sorted(expected)
    assert b"carol" not in download.content


async def test_change_password(site: Site) -> None:
    new = "a brand new passphrase"
    async with site.client() as c, site.client() as other:
        await login(c)
        await login(other)
        assert len(site.sessions) == 2
        page = await c.get("/account/password")
        token = csrf_of(page.text)

        async def change(old: str, new: str, confirm: str) -> httpx.Response:
            return await c.post("/account/password", data={
                "csrf": token, "old": old, "new": new, "confirm": confirm})

        wrong = await change("not my password", new, new)
        assert wrong.status_code == 403 and "current password is not right" in wrong.text
        mismatch = await change(PASSWORD, new, new + "x")
        assert mismatch.status_code == 422 and "not the same" in mismatch.text
        short = await change(PASSWORD, "short", "short")
        assert short.status_code == 422 and "at least 8 characters" in short.text
        await site.app.accounts.authenticate(BOB, PASSWORD)  # nothing changed yet
        done = await change(PASSWORD, new, new)
        assert done.status_code == 200 and "Your password is changed" in done.text
        assert "1 other session was logged out" in done.text
        assert (await c.get("/account")).status_code == 200
        assert (await other.get("/account")).status_code == 303
    await site.app.accounts.authenticate(BOB, new)
    async with site.client() as c:
        assert (await login(c, password=PASSWORD)).status_code == 401
        assert (await login(c, password=new)).status_code == 303


# -- isolation -------------------------------------------------------------------------


async def test_no_page_shows_another_accounts_data(site: Site) -> None:
    """Carol has mail, log events and a legal notice; Bob, logged in, sees none of it
    on any page, and cannot fetch the proof of her events by index."""
    app = site.app
    matter = await app.legal.file(legal_request(CAROL, ["subscriber"]), "lee")
    await app.legal.decide(matter.id, "lee")
    feed = _open_access_feed(app)
    assert feed is not None
    try:
        carol_events = [e["index"] for e in (await feed.page_async(CAROL)).events]
        bob_events = [e["index"] for e in (await feed.page_async(BOB)).events]
    finally:
        await asyncio.to_thread(feed.close)
    assert carol_events and bob_events
    carol_ref = await app.accounts.resolve(CAROL)
    needles = ["carol", carol_ref.record.key_id.hex(), matter.id, "eu-dublin</strong>",
               "carol-secret-subject"]
    async with site.client() as c:
        await login(c)
        for path in ("/account", "/account/access", "/account/legal", "/account/export",
                     "/account/encryption", "/account/password", "/account/export.mbox"):
            body = (await c.get(path)).text
            for needle in needles:
                assert needle not in body, (path, needle)
        for index in carol_events:
            stolen = await c.get(f"/account/access/{index}/proof.json")
            assert stolen.status_code == 404, index
        for index in ("-1", "999999", "abc"):
            assert (await c.get(f"/account/access/{index}/proof.json")).status_code in (
                404, 422)
        for index in bob_events:
            assert (await c.get(f"/account/access/{index}/proof.json")).status_code == 200
    # And Carol sees her own.
    async with site.client() as c:
        await login(c, CAROL)
        assert matter.id in (await c.get("/account/legal")).text
        assert "eu-dublin" in (await c.get("/account")).text
        assert "Ireland" in (await c.get("/account")).text


async def test_api_schema_is_unchanged_by_the_pages(site: Site) -> None:
    async with site.client() as c:
        schema = (await c.get("/openapi.json")).json()
    # Pages stay out of the API schema (the API's route list is checked in
    # test_http_api.py); the API still returns no mail.
    assert not [p for p in schema["paths"] if not p.startswith(("/api/", "/healthz"))]


async def test_end_to_end_encryption_page(site: Site) -> None:
    secret = Tsk.generate("Bob <bob@example.test>")
    public = str(secret.extract_certificate())
    fingerprint = secret.extract_certificate().fingerprint.upper()
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/encryption")
        assert page.status_code == 200 and 'name="key"' in page.text
        token = csrf_of(page.text)

        async def post(**fields: str) -> httpx.Response:
            return await c.post("/account/encryption", data={"csrf": token, **fields})

        wrong = await post(action="on", key=public, password="not my password")
        assert wrong.status_code == 403 and "password is not right" in wrong.text
        private = await post(action="on", key=str(secret), password=PASSWORD)
        assert private.status_code == 422 and "secret key" in private.text
        empty = await post(action="on", key="", password=PASSWORD)
        assert empty.status_code == 422
        assert (await site.app.accounts.resolve(BOB)).record.custody == "sealed"

        on = await post(action="on", key=public, password=PASSWORD)
        assert on.status_code == 200 and "End-to-end encryption is on" in on.text
        assert fingerprint in on.text
        assert fingerprint in (await c.get("/account")).text  # the overview says so too
        ref = await site.app.accounts.resolve(BOB)
        assert ref.record.custody == "e2e"
        await site.app.delivery.deliver(b"Subject: after\r\n\r\nE2E-BODY-MARKER\r\n", [ref])

        off = await post(action="off", password=PASSWORD)
        assert off.status_code == 200 and "End-to-end encryption is off" in off.text
        assert (await site.app.accounts.resolve(BOB)).record.custody == "sealed"
        forged = await c.post("/account/encryption", data={"csrf": "x", "action": "off",
                                                           "password": PASSWORD})
        assert forged.status_code == 403
    session = await site.app.accounts.authenticate(BOB, PASSWORD)
    inbox = await site.app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await site.app.mailboxes.messages(session, inbox.id)
    stored = (await site.app.mailboxes.bodies(session, msgs[-1:]))[msgs[-1].uid]
    assert b"multipart/encrypted" in stored and b"E2E-BODY-MARKER" not in stored


async def test_the_privacy_center_says_how_the_logs_name_the_owner(site: Site) -> None:
    """Default ``log.addresses = hashed``: the overview shows the owner's pseudonym,
    the one the server's log lines carry; with ``full`` it says the address is written."""
    async with site.client() as c:
        await login(c)
        page = (await c.get("/account")).text
    pseudonym = logs.pseudonym(site.app.config, BOB)
    assert "log.addresses = hashed" in page and pseudonym in page
    full = replace(site.app.config, log=replace(site.app.config.log, addresses="full"))
    site.app.config = full
    api = make_api(site.app, access_feed=None, sessions=site.sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE) as c:
        await login(c)
        page = (await c.get("/account")).text
    assert "log.addresses = full" in page and "in full" in page and pseudonym not in page


async def test_overview_shows_the_quota_in_force_and_usage(site: Site) -> None:
    from letterlock.services.accounts.quotas import Quota
    async with site.client() as c:
        await login(c)
        assert "Your account has no quota" in (await c.get("/account")).text
        await site.app.quotas.set_limits("@example.test", Quota(storage=1 << 30,
                                                               messages=1000))
        bob = await site.app.accounts.resolve(BOB)
        await site.app.mailboxes.append(bob, "INBOX", b"Subject: q\r\n\r\nhello\r\n")
        page = (await c.get("/account")).text
        quota = page[page.index('id="quota"'):].split("</p>")[0]
        assert "of 1000 messages" in quota and "<strong>" in quota
        assert "of 1.0 GiB stored" in quota, quota
