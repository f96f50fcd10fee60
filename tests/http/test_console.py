"""The operator console over HTTP (httpx against the real application): sign-in, a
wrong password, sessions ending, CSRF refused, the role gate, and that each admin
action changes what it says (checked through the services and a real IMAP client)
and is in the audit log under the operator's name."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from letterlock.app import App
from letterlock.audit.events import EventFinder, EventType
from letterlock.http import console_admin
from letterlock.http.console_auth import COOKIE, ConsoleSessions
from letterlock.http.server import make_api
from letterlock.imap.server import ImapServer
from letterlock.services.accounts import certificates
from letterlock.services.accounts.operators import Operator
from letterlock.services.mail.outbound import Spool, load_queue_key
from letterlock.services.mail.queue_entry import QueueEntry, RecipientState
from letterlock.services.operations.log_events import LogEvent
from letterlock.services.operations.queue_admin import QueueAdmin
from support.dns_server import dns_server

PASSWORD = "operator password"
CAROL = "carol@example.test"
CAROL_PW = "carol's first password"


@pytest.fixture
async def site(app: App) -> AsyncIterator[httpx.AsyncClient]:
    for name, role in (("root", "admin"), ("lee", "legal"), ("ada", "auditor")):
        await app.operators.add(name, role, PASSWORD, actor="test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_api(app)),
                                 base_url="http://letterlock.test") as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD
                  ) -> httpx.Response:
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post("/console/login", data={
        "csrf": csrf_of(form.text), "name": name, "password": password})


async def session_csrf(client: httpx.AsyncClient) -> str:
    return csrf_of((await client.get("/console")).text)


async def actors(app: App, kind: EventType, account: str) -> list[str]:
    finder = app.audit
    assert isinstance(finder, EventFinder)
    return [e.actor for e in await finder.events_since(0)
            if e.type == kind and e.account == account]


def imap_login(port: int, address: str, password: str) -> bool:
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(address, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()
    return True


def events(caplog: pytest.LogCaptureFixture, name: LogEvent) -> list[dict[str, object]]:
    return [dict(r.ll_fields) for r in caplog.records
            if getattr(r, "ll_event", None) == name]


async def test_sign_in_wrong_password_and_sign_out(site: httpx.AsyncClient,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    assert (await site.get("/console")).headers["location"] == "/console/login"
    wrong = await sign_in(site, "root", "not the password")
    assert wrong.status_code == 401
    assert "do not match an operator" in wrong.text
    assert COOKIE not in site.cookies
    [failed] = events(caplog, LogEvent.LOGIN_FAILED)
    assert failed["operator"] == "root"
    assert "not the password" not in caplog.text
    assert all("not the password" not in str(r.__dict__) for r in caplog.records)
    # A cookie naming no live session (expired, or the server restarted) is sent to
    # the sign-in form once, with a notice, and dropped.
    site.cookies.set(COOKIE, "stale", domain="letterlock.test", path="/")
    stale = await site.get("/console/queue")
    assert stale.headers["location"] == "/console/login?expired=1"
    assert f'{COOKIE}=""' in stale.headers["set-cookie"]
    site.cookies.delete(COOKIE)
    assert "session ended" in (await site.get("/console/login?expired=1")).text

    ok = await sign_in(site, "root")
    assert ok.status_code == 303 and ok.headers["location"] == "/console"
    cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    home = await site.get("/console")
    assert home.status_code == 200
    assert "Signed in as" in home.text and "root" in home.text
    assert "Health of each component" in home.text and "audit log" in home.text
    for label in ("Accounts", "Addresses", "Domains", "Regions", "Queue", "Certificates",
                  "Operators", "Backups", "Audit log", "Mail export"):
        assert f">{label}</a>" in home.text
    # Each component's state: both regions' stores answer, the audit head verifies,
    # no listener runs in this test, and the queue is empty.
    assert home.text.count('class="hint">answers<') == 2 and "signed head verified" in home.text
    assert "IMAP 127.0.0.1:" in home.text and "not listening" in home.text
    assert "<strong>OK</strong> · outbound queue" in home.text and "empty" in home.text
    assert (await site.get("/console/")).headers.get("location", "").endswith("/console")

    bye = await site.post("/console/logout", data={"csrf": csrf_of(home.text)})
    assert bye.headers["location"] == "/console/login?bye=1"
    assert (await site.get("/console/accounts")).status_code == 303


async def test_the_sign_in_form_and_every_action_need_their_csrf_token(
        site: httpx.AsyncClient, app: App) -> None:
    form = await site.get("/console/login")
    forged = await site.post("/console/login", data={
        "csrf": "forged", "name": "root", "password": PASSWORD})
    assert forged.status_code == 403 and form.status_code == 200
    await sign_in(site, "root")
    refused = await site.post("/console/accounts", data={
        "csrf": "forged", "address": CAROL, "region": "us-east",
        "password": CAROL_PW, "confirm": CAROL_PW})
    assert refused.status_code == 403
    assert "cannot be accepted" in refused.text
    assert CAROL not in [a.address for a in await app.accounts.list()]


@pytest.mark.parametrize("name", ["lee", "ada"])
async def test_legal_and_auditor_operators_get_no_admin_page(
        site: httpx.AsyncClient, app: App, name: str) -> None:
    await sign_in(site, name)
    home = await site.get("/console")
    assert home.status_code == 200 and ">Legal matters</a>" in home.text
    assert ">Accounts</a>" not in home.text and "Health of each" not in home.text
    csrf = csrf_of(home.text)
    for path in ("/console/accounts", "/console/domains", "/console/regions",
                 "/console/queue", "/console/certificates", "/console/operators",
                 "/console/addresses", "/console/backups", "/console/audit",
                 "/console/mail", "/console/domains/x/check"):
        page = await site.get(path)
        assert page.status_code == 403, path
        assert "Not for your role" in page.text and "admin" in page.text
    created = await site.post("/console/accounts", data={
        "csrf": csrf, "address": CAROL, "region": "us-east",
        "password": CAROL_PW, "confirm": CAROL_PW})
    assert created.status_code == 403
    assert CAROL not in [a.address for a in await app.accounts.list()]


async def test_sessions_end_when_idle_and_when_old() -> None:
    now = [0.0]
    store = ConsoleSessions(idle_s=60, max_age_s=300, clock=lambda: now[0])
    who = Operator("root", "admin", datetime.now(UTC))
    first = store.open(who)
    now[0] = 59
    assert store.get(first.id) is first
    now[0] = 120
    assert store.get(first.id) is None  # idle 61 s
    second = store.open(who)
    for t in range(150, 420, 50):
        now[0] = t
        assert store.get(second.id) is second
    now[0] = 421
    assert store.get(second.id) is None  # 300 s after the sign-in


async def test_accounts_are_created_disabled_moved_reset_and_deleted_by_name(
        site: httpx.AsyncClient, app: App) -> None:
    await sign_in(site, "root")
    csrf = await session_csrf(site)
    mismatch = await site.post("/console/accounts", data={
        "csrf": csrf, "address": CAROL, "region": "us-east", "password": CAROL_PW,
        "confirm": "something else"})
    assert mismatch.status_code == 422 and "not the same" in mismatch.text
    bad = await site.post("/console/accounts", data={
        "csrf": csrf, "address": "carol@elsewhere.test", "region": "us-east",
        "password": CAROL_PW, "confirm": CAROL_PW})
    assert bad.status_code == 422 and "not hosted here" in bad.text

    made = await site.post("/console/accounts", data={
        "csrf": csrf, "address": CAROL, "region": "us-east", "password": CAROL_PW,
        "confirm": CAROL_PW})
    assert made.status_code == 303
    listing = (await site.get("/console/accounts")).text
    code = re.search(r"keep: ([A-Z0-9-]+)", listing)
    assert code, listing
    assert CAROL in listing and "us-east" in listing
    assert "loses" in listing or "lost" in listing  # what a reset without the code means
    assert await actors(app, EventType.ADMIN_ACCOUNT_CREATED, CAROL) == ["root"]

    imap = ImapServer(app.accounts, app.mailboxes, app.config.imap, None)
    await imap.start("127.0.0.1", 0, 0)
    port = imap.port
    assert port is not None
    try:
        assert await asyncio.to_thread(imap_login, port, CAROL, CAROL_PW)

        off = await site.post("/console/accounts/disable", data={
            "csrf": csrf, "address": CAROL, "action": "disable"})
        assert off.status_code == 303
        assert not await asyncio.to_thread(imap_login, port, CAROL, CAROL_PW)
        listed = (await site.get("/console/accounts")).text
        assert f"Disabled {CAROL}" in listed and ">disabled</td>" in listed
        twice = await site.post("/console/accounts/disable", data={
            "csrf": csrf, "address": CAROL, "action": "disable"})
        assert twice.status_code == 409 and "already disabled" in twice.text
        on = await site.post("/console/accounts/disable", data={
            "csrf": csrf, "address": CAROL, "action": "enable"})
        assert on.status_code == 303
        assert await asyncio.to_thread(imap_login, port, CAROL, CAROL_PW)
        assert await actors(app, EventType.ADMIN_ACCOUNT_DISABLED, CAROL) == ["root"]
        assert await actors(app, EventType.ADMIN_ACCOUNT_ENABLED, CAROL) == ["root"]

        moved = await site.post("/console/accounts/move", data={
            "csrf": csrf, "address": CAROL, "region": "eu-dublin"})
        assert moved.status_code == 303
        assert (await app.accounts.resolve(CAROL)).region == "eu-dublin"
        assert await actors(app, EventType.ADMIN_ACCOUNT_MOVED, CAROL) == ["root"]
        assert "Moved carol@example.test" in (await site.get("/console/accounts")).text

        wrong = await site.post("/console/accounts/reset", data={
            "csrf": csrf, "address": CAROL, "code": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF",
            "password": "a new password here"})
        assert wrong.status_code in (403, 422)
        reset = await site.post("/console/accounts/reset", data={
            "csrf": csrf, "address": CAROL, "code": code.group(1),
            "password": "a new password here"})
        assert reset.status_code == 303, reset.text
        assert await actors(app, EventType.ACCOUNT_KEY_RECOVERED, CAROL) == ["root"]
        assert not await asyncio.to_thread(imap_login, port, CAROL, CAROL_PW)
        assert await asyncio.to_thread(imap_login, port, CAROL, "a new password here")

        kept = await site.post("/console/accounts/delete", data={
            "csrf": csrf, "address": CAROL, "confirm": "someone else"})
        assert kept.status_code == 409 and "nothing was deleted" in kept.text
        gone = await site.post("/console/accounts/delete", data={
            "csrf": csrf, "address": CAROL, "confirm": CAROL})
        assert gone.status_code == 303
        assert CAROL not in [a.address for a in await app.accounts.list()]
        assert await actors(app, EventType.ADMIN_ACCOUNT_DELETED, CAROL) == ["root"]
        assert not await asyncio.to_thread(imap_login, port, CAROL,
                                           "a new password here")
    finally:
        await imap.close()


def queued(app: App) -> QueueEntry:
    entry = QueueEntry(
        id="ab12cd34ef56ab12cd34ef56", region="us-east", account="bob@example.test",
        mail_from="bob@example.test", created=datetime.now(UTC) - timedelta(hours=2),
        attempts=3, next_attempt=datetime.now(UTC) + timedelta(hours=5),
        recipients=(RecipientState("dave@far.example", status="451",
                                   diagnostic="4.7.1 try later"),))
    Spool(app.config.home, load_queue_key(app.config.control_dir)).write_new(
        entry, b"Subject: waiting\r\n\r\nbody\r\n")
    return entry


async def test_the_queue_is_listed_retried_held_and_deleted(
        site: httpx.AsyncClient, app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    entry = queued(app)
    admin = QueueAdmin(app.config.home, app.config.run_dir)
    await sign_in(site, "root")
    page = (await site.get("/console/queue")).text
    assert entry.id in page and "4.7.1 try later" in page and "dave@far.example" in page
    csrf = csrf_of(page)
    assert (await site.post("/console/queue/hold", data={
        "csrf": csrf, "id": entry.id})).status_code == 303
    assert admin.find(entry.id).held
    assert "is on hold" in (await site.get("/console/queue")).text
    before = datetime.now(UTC)
    assert (await site.post("/console/queue/retry", data={
        "csrf": csrf, "id": entry.id})).status_code == 303
    now = admin.find(entry.id)
    assert not now.held and before <= now.next_attempt < entry.next_attempt
    missing = await site.post("/console/queue/retry", data={"csrf": csrf, "id": "ffffffff"})
    assert missing.status_code == 303
    assert "No queued message ffffffff" in (await site.get("/console/queue")).text
    assert (await site.post("/console/queue/delete", data={
        "csrf": csrf, "id": entry.id})).status_code == 303
    assert admin.entries() == []
    changed = events(caplog, LogEvent.OUTBOUND_CHANGED)
    assert [(c["action"], c["operator"]) for c in changed] == [("hold", "root"),
                                                               ("retry", "root")]
    assert events(caplog, LogEvent.OUTBOUND_DELETED) == [
        {"outbound": entry.id, "action": "delete", "operator": "root"}]
    assert "The queue is empty" in (await site.get("/console/queue")).text


async def test_dns_records_are_checked_live(site: httpx.AsyncClient, app: App,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    await sign_in(site, "root")
    page = (await site.get("/console/domains")).text
    assert "example.test" in page and "v=DKIM1" in page and "v=spf1" in page
    # A resolver that reaches nothing: every record is reported missing.
    monkeypatch.setattr(console_admin, "DNS_NAMESERVERS", ["127.0.0.1:9"])
    monkeypatch.setattr("letterlock.services.operations.dns_check.LIFETIME_S", 0.5)
    nothing = (await site.get("/console/domains/example.test/check")).text
    assert nothing.count('class="dns-state">not published') >= 3
    hostname = app.config.server.hostname
    zone = {("example.test.", "MX"): [f"10 {hostname}."],
            ("example.test.", "TXT"): ['"v=spf1 -all"']}
    async with dns_server(zone) as resolver:
        monkeypatch.setattr(console_admin, "DNS_NAMESERVERS",
                            [f"127.0.0.1:{resolver.port}"])
        checked = (await site.get("/console/domains/example.test/check")).text
    assert 'class="dns-state">published' in checked  # the MX
    assert 'class="dns-state">different: v=spf1 -all' in checked  # the SPF record
    assert 'class="dns-state">not published' in checked  # DKIM, DMARC
    assert (await site.get("/console/domains/nowhere.test/check")).status_code == 404


async def test_domains_regions_and_certificates(site: httpx.AsyncClient, app: App) -> None:
    await sign_in(site, "root")
    csrf = await session_csrf(site)
    added = await site.post("/console/domains", data={"csrf": csrf, "name": "New.Test"})
    assert added.status_code == 303
    assert "new.test" in {d.name for d in await app.control.list_domains()}
    again = await site.post("/console/domains", data={"csrf": csrf, "name": "new.test"})
    assert again.status_code == 422 and "Traceback" not in again.text
    region = await site.post("/console/regions", data={
        "csrf": csrf, "id": "eu-frankfurt", "country": "de"})
    assert region.status_code == 303
    assert ("eu-frankfurt", "DE") in {(r.id, r.country) for r in await app.control.list_regions()}
    nowhere = await site.post("/console/regions", data={
        "csrf": csrf, "id": "Bad Id", "country": "zz"})
    assert nowhere.status_code == 422 and 'role="alert"' in nowhere.text
    regions = (await site.get("/console/regions")).text
    assert "Germany" in regions
    assert "eu-dublin" in regions and "Ireland" in regions and "us-east" in regions
    assert "SQLite under" in regions and "Reachable" in regions
    missing = (await site.get("/console/certificates")).text
    assert "cannot read it" in missing  # made when the server first starts
    cert, key, _ = certificates.in_use("", "", app.config.control_dir / "tls")
    cert.parent.mkdir(parents=True, exist_ok=True)
    certificates.make_self_signed(cert, key, app.config.server.hostname)
    certs = (await site.get("/console/certificates")).text
    assert app.config.server.hostname in certs and "self-signed" in certs
    assert "SHA-256 fingerprint" in certs and "days from now" in certs
    assert re.search(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", certs)


async def test_operators_are_added_given_passwords_and_removed(
        site: httpx.AsyncClient, app: App) -> None:
    await sign_in(site, "root")
    csrf = await session_csrf(site)
    added = await site.post("/console/operators", data={
        "csrf": csrf, "name": "max", "role": "auditor", "password": PASSWORD})
    assert added.status_code == 303
    assert (await app.operators.get("max")).role == "auditor"
    bad = await site.post("/console/operators", data={
        "csrf": csrf, "name": "eve", "role": "superuser", "password": PASSWORD})
    assert bad.status_code == 422 and "Invalid role" in bad.text
    assert (await site.post("/console/operators/password", data={
        "csrf": csrf, "name": "max", "password": "max's second password"})).status_code == 303
    await app.operators.authenticate("max", "max's second password")
    myself = await site.post("/console/operators/remove", data={"csrf": csrf, "name": "root"})
    assert myself.status_code == 409 and "cannot remove yourself" in myself.text
    assert (await site.post("/console/operators/remove", data={
        "csrf": csrf, "name": "max"})).status_code == 303
    assert "max" not in [o.name for o in await app.operators.list()]
    finder = app.audit
    assert isinstance(finder, EventFinder)
    by_root = {e.type for e in await finder.events_since(0) if e.actor == "root"}
    assert {EventType.ADMIN_OPERATOR_ADDED, EventType.ADMIN_OPERATOR_PASSWORD_SET,
            EventType.ADMIN_OPERATOR_REMOVED} <= by_root


async def test_quotas_are_set_and_shown(site: httpx.AsyncClient, app: App) -> None:
    await sign_in(site, "root")
    csrf = await session_csrf(site)
    await app.accounts.create(CAROL, "us-east", CAROL_PW)
    done = await site.post("/console/accounts/quota", data={
        "csrf": csrf, "scope": "@example.test", "storage": "2M", "messages": "100"})
    assert done.status_code == 303
    limits = await app.quotas.limits(CAROL)
    assert (limits.storage, limits.messages) == (2 * 1024 * 1024, 100)
    page = (await site.get("/console/accounts")).text
    assert "@example.test: storage 2.0 MiB, messages 100." in page and "of 2.0 MiB" in page
    bad = await site.post("/console/accounts/quota", data={
        "csrf": csrf, "scope": "@example.test", "storage": "", "messages": "many"})
    assert bad.status_code == 422 and "not a whole number" in bad.text
    cleared = await site.post("/console/accounts/quota", data={
        "csrf": csrf, "scope": "@example.test", "storage": "", "messages": ""})
    assert cleared.status_code == 303
    assert (await app.quotas.limits(CAROL)).unlimited


async def test_aliases_groups_catch_alls_and_send_as(site: httpx.AsyncClient,
                                                     app: App) -> None:
    await app.accounts.create(CAROL, "us-east", CAROL_PW)
    await app.accounts.create("dave@example.test", "eu-dublin", CAROL_PW)
    await sign_in(site, "root")
    csrf = await session_csrf(site)

    async def post(path: str, **fields: str) -> httpx.Response:
        return await site.post(f"/console/addresses/{path}", data={"csrf": csrf, **fields})

    assert (await post("alias", alias="c@example.test", account=CAROL)).status_code == 303
    assert await app.addresses.targets("c@example.test") == [CAROL]
    taken = await post("alias", alias="c@example.test", account=CAROL)
    assert taken.status_code == 422 and 'role="alert"' in taken.text
    assert (await post("group", group="team@example.test",
                       members=f"{CAROL}, dave@example.test")).status_code == 303
    assert await app.addresses.members("team@example.test") == [CAROL, "dave@example.test"]
    assert (await post("member", group="team@example.test", account=CAROL,
                       action="remove")).status_code == 303
    assert await app.addresses.members("team@example.test") == ["dave@example.test"]
    assert (await post("catch-all", domain="example.test", account=CAROL)).status_code == 303
    assert (await post("send-as", account="dave@example.test",
                       address="c@example.test", action="grant")).status_code == 303
    assert await app.addresses.grants("dave@example.test") == ["c@example.test"]
    again = await post("send-as", account="dave@example.test", address="c@example.test",
                       action="grant")
    assert again.status_code == 422 and "Nothing changed" in again.text
    page = (await site.get("/console/addresses")).text
    assert "team@example.test" in page and "c@example.test" in page and "catch" in page
    assert (await post("remove", address="c@example.test")).status_code == 303
    assert (await post("domain-alias", alias="Example.Net", domain="example.test",
                       action="add")).status_code == 303
    assert await app.addresses.list_domain_aliases() == [("example.net", "example.test")]
    assert "example.net → example.test" in (await site.get("/console/addresses")).text
    assert (await post("domain-alias", alias="example.net",
                       action="remove")).status_code == 303
    assert await app.addresses.list_domain_aliases() == []
    assert await app.addresses.kind_of("c@example.test") is None
    finder = app.audit
    assert isinstance(finder, EventFinder)
    added = [e for e in await finder.events_since(0)
             if e.type == EventType.ADMIN_ADDRESS_ADDED]
    assert added and {e.actor for e in added} == {"root"}
