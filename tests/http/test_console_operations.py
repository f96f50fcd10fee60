"""The console's operations areas over HTTP (httpx against the real application):
backups of a region with their manifest checked, the audit log verified, an account's
mail imported and exported through the backup root; only for admins, only with the
session's CSRF token, each action in the audit log (or a log line) under the
operator's name, and names from the browser never taken as paths."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_console import CAROL, CAROL_PW, PASSWORD, actors, csrf_of, events, sign_in

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.http.server import make_api
from letterlock.services.operations.backup_root import VERIFIED_FILE
from letterlock.services.operations.log_events import LogEvent

MESSAGE = (b"From: dora@example.org\r\nTo: carol@example.test\r\nSubject: the plan\r\n"
           b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <plan@example.org>\r\n"
           b"\r\nMeet at noon.\r\n")


@pytest.fixture
async def site(app: App) -> AsyncIterator[httpx.AsyncClient]:
    for name, role in (("root", "admin"), ("lee", "legal"), ("ada", "auditor")):
        await app.operators.add(name, role, PASSWORD, actor="test")
    await app.accounts.create(CAROL, "us-east", CAROL_PW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_api(app)),
                                 base_url="http://letterlock.test") as c:
        yield c


def maildir(root: Path, name: str) -> Path:
    """A small Maildir++ tree (INBOX seen and flagged, Archive) put into the root."""
    tree = root / name
    for folder in ("", ".Archive"):
        for sub in ("cur", "new", "tmp"):
            (tree / folder / sub).mkdir(parents=True)
    (tree / "cur" / "1793613600.1.host:2,FS").write_bytes(MESSAGE)
    (tree / ".Archive" / "cur" / "1793613601.2.host:2,S").write_bytes(
        MESSAGE.replace(b"plan@", b"old@"))
    return tree


async def post(site: httpx.AsyncClient, path: str, page: str, **fields: str
               ) -> httpx.Response:
    csrf = csrf_of((await site.get(page)).text)
    return await site.post(path, data={"csrf": csrf, **fields})


async def flash(site: httpx.AsyncClient, done: httpx.Response) -> str:
    assert done.status_code == 303, done.text[:3000]
    text = (await site.get(done.headers["location"])).text
    found = re.search(r'<p class="message ok" role="status">([^<]*)</p>', text)
    assert found, text[:3000]
    return found.group(1)


async def backup_done(site: httpx.AsyncClient) -> str:
    """What the Backups page says of the latest backup started there, once it ended
    (it runs in the background)."""
    for _ in range(300):
        page = (await site.get("/console/backups")).text
        if "<strong>Running</strong>" not in page:
            found = re.search(r'<section class="card job"[^>]*>\s*<p[^>]*>([^<]*)</p>', page)
            assert found, page[:3000]
            return found.group(1)
        await asyncio.sleep(0.1)
    raise AssertionError("the backup never ended")


@pytest.mark.parametrize("name", ["lee", "ada"])
async def test_only_admins_open_or_act(site: httpx.AsyncClient, app: App, name: str) -> None:
    await sign_in(site, name)
    csrf = csrf_of((await site.get("/console")).text)
    for path in ("/console/backups", "/console/audit", "/console/mail"):
        page = await site.get(path)
        assert page.status_code == 403 and "Not for your role" in page.text, path
    for path, fields in (("/console/backups", {"region": "us-east"}),
                         ("/console/audit/verify", {}),
                         ("/console/mail/export", {"address": CAROL, "format": "maildir",
                                                   "password": CAROL_PW})):
        refused = await site.post(path, data={"csrf": csrf, **fields})
        assert refused.status_code == 403, path
    assert not app.config.backup_root.exists()
    assert not (app.config.control_dir / VERIFIED_FILE).exists()


async def test_actions_need_the_session_csrf_token(site: httpx.AsyncClient, app: App) -> None:
    await sign_in(site, "root")
    for path, fields in (("/console/backups", {"region": "us-east"}),
                         ("/console/audit/verify", {}),
                         ("/console/mail/import", {"address": CAROL, "source": "x"})):
        forged = await site.post(path, data={"csrf": "forged", **fields})
        assert forged.status_code == 403 and "cannot be accepted" in forged.text, path
    assert not app.config.backup_root.exists()


async def test_mail_in_a_backup_verified_and_damage_found(
        site: httpx.AsyncClient, app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    root = app.config.backup_root
    assert root == app.config.home.parent / "home-backups"
    await sign_in(site, "root")
    # Nothing is imported from a path, or from outside the root.
    maildir(root, "carol-old")
    for source in ("../home", "/etc", ".hidden", "missing"):
        refused = await post(site, "/console/mail/import", "/console/mail",
                             address=CAROL, source=source)
        assert refused.status_code == 422 and "backup directory" in refused.text, source
    (root / "noise").mkdir()
    (root / "noise" / "INBOX.mbox").write_bytes(bytes(range(256)) * 4)
    noise = await post(site, "/console/mail/import", "/console/mail", address=CAROL,
                       source="noise")
    assert noise.status_code == 422 and "is not an mbox file" in noise.text
    assert await actors(app, EventType.ADMIN_MAIL_IMPORTED, CAROL) == []
    said = await flash(site, await post(site, "/console/mail/import", "/console/mail",
                                        address=CAROL, source="carol-old"))
    assert said == f"Imported 2 message(s) in 2 folder(s) from carol-old into {CAROL}."
    assert await actors(app, EventType.ADMIN_MAIL_IMPORTED, CAROL) == ["root"]
    [imported] = events(caplog, LogEvent.MAIL_IMPORTED)
    assert imported["messages"] == 2

    page = await site.get("/console/backups")
    assert page.status_code == 200 and "never backed up" in page.text
    assert str(root) in page.text
    said = await flash(site, await post(site, "/console/backups", "/console/backups",
                                        region="us-east"))
    assert said.startswith("Backing up region us-east into us-east-")
    said = await backup_done(site)
    assert said.startswith("Backed up region us-east into us-east-")
    assert "1 account(s)" in said and "2 message(s)" in said
    [made] = [p for p in root.iterdir() if p.name.startswith("us-east-")]
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["region"] == "us-east" and manifest["counts"]["messages"] == 2
    assert [e.actor for e in await app.audit.events_since(0)  # type: ignore[attr-defined]
            if e.type == EventType.ADMIN_REGION_BACKED_UP] == ["root"]
    assert [e["region"] for e in events(caplog, LogEvent.BACKUP_FINISHED)] == ["us-east"]
    # The sealed backup holds no plaintext of the mail.
    assert not [p for p in made.rglob("*") if p.is_file() and b"Meet at noon" in p.read_bytes()]

    page = (await site.get("/console/backups")).text
    assert manifest["backup_id"] in page and "never backed up" in page  # eu-dublin
    command = f"letterlock --home {app.config.home} restore us-east {made}"
    assert command in page and "stop the server" in page

    said = await flash(site, await post(site, "/console/backups/verify", "/console/backups",
                                        name=made.name))
    assert said.startswith(f"{made.name} is whole") and "2 message(s)" in said
    pack = next((made / "blobs").glob("*.pack"))
    pack.write_bytes(pack.read_bytes()[:-1] + b"X")
    damaged = await post(site, "/console/backups/verify", "/console/backups", name=made.name)
    assert damaged.status_code == 422 and "is damaged (SHA-256 does not match)" in damaged.text
    assert [e["ok"] for e in events(caplog, LogEvent.BACKUP_VERIFIED)] == [True, False]
    assert all(e["operator"] == "root" for e in events(caplog, LogEvent.BACKUP_VERIFIED))
    unknown = await post(site, "/console/backups", "/console/backups", region="mars")
    assert unknown.status_code == 422 and "mars" in unknown.text
    assert [p.name for p in root.iterdir() if p.name.startswith("mars")] == []


async def test_an_export_needs_the_owners_password(site: httpx.AsyncClient, app: App,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    await sign_in(site, "root")
    page = await site.get("/console/mail")
    assert "owner&#39;s password" in page.text or "owner's password" in page.text
    maildir(app.config.backup_root, "carol-old")
    await post(site, "/console/mail/import", "/console/mail", address=CAROL,
               source="carol-old")
    wrong = await post(site, "/console/mail/export", "/console/mail", address=CAROL,
                       format="maildir", password="not hers")
    assert wrong.status_code == 422 and "not the password of" in wrong.text
    assert not [p for p in app.config.backup_root.iterdir() if p.name.startswith("export")]
    bad = await post(site, "/console/mail/export", "/console/mail", address=CAROL,
                     format="../x", password=CAROL_PW)
    assert bad.status_code == 422 and "choose maildir or mbox-folders" in bad.text
    for fmt in ("maildir", "mbox-folders"):
        said = await flash(site, await post(site, "/console/mail/export", "/console/mail",
                                            address=CAROL, format=fmt, password=CAROL_PW))
        assert re.match(rf"Exported 2 message\(s\) in \d+ folder\(s\) of {CAROL} to "
                        rf"{app.config.backup_root}/export-", said), said
        assert "PLAINTEXT" in said
    exports = sorted(p for p in app.config.backup_root.iterdir()
                     if p.name.startswith("export-"))
    assert len(exports) == 2
    texts = [p.read_bytes() for e in exports for p in e.rglob("*") if p.is_file()]
    assert sum(b"Meet at noon." in t for t in texts) == 4  # two messages, two formats
    assert await actors(app, EventType.ADMIN_MAIL_EXPORTED, CAROL) == ["root", "root"]
    assert [e["format"] for e in events(caplog, LogEvent.MAIL_EXPORTED)] == [
        "maildir", "mbox-folders"]
    assert CAROL_PW not in caplog.text and "not hers" not in caplog.text
    # An export is a source for an import (a round trip through the root).
    again = await site.get("/console/mail")
    assert exports[0].name in again.text


async def test_the_audit_log_is_verified_and_its_last_check_shown(
        site: httpx.AsyncClient, app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    await sign_in(site, "root")
    page = await site.get("/console/audit")
    assert page.status_code == 200 and "Not verified from this console yet" in page.text
    size = re.search(r'<dd id="tree-size">(\d+)</dd>', page.text)
    assert size and int(size.group(1)) > 0
    said = await flash(site, await post(site, "/console/audit/verify", "/console/audit"))
    assert said.startswith("The audit log is intact:") and " events, " in said
    page = await site.get("/console/audit")
    assert "<strong>Intact</strong>" in page.text and "by root" in page.text
    [logged] = events(caplog, LogEvent.LOG_VERIFIED)
    assert logged["operator"] == "root" and logged["intact"] is True
    kept_file = app.config.control_dir / VERIFIED_FILE
    saved = json.loads(kept_file.read_text())
    assert saved["intact"] is True and saved["operator"] == "root"
    assert saved["against"] is None and saved["head"]["tree_size"] > 0
    # The next verification checks the log still holds the head this one kept.
    await app.accounts.create("dan@example.test", "eu-dublin", CAROL_PW)
    said = await flash(site, await post(site, "/console/audit/verify", "/console/audit"))
    assert f"still holding the head of {saved['head']['tree_size']} events" in said
    again = json.loads(kept_file.read_text())
    assert again["against"] == saved["head"]["tree_size"]
    assert again["head"]["tree_size"] > saved["head"]["tree_size"]
    # A log of another key than the one verified before (replaced) is reported.
    other = {**again, "head": {**again["head"], "public_key": "ab" * 32}}
    kept_file.write_text(json.dumps(other))
    replaced = await post(site, "/console/audit/verify", "/console/audit")
    assert replaced.status_code == 500 and "a different log" in replaced.text
    assert json.loads(kept_file.read_text())["head"]["public_key"] == "ab" * 32  # not forgotten
    kept_file.write_text(json.dumps(again))

    # An event rewritten on disk is found, and the page says so.
    victim = app.config.control_dir / "audit" / "events.jsonl"
    kept = victim.read_bytes()
    assert CAROL.encode() in kept
    victim.write_bytes(kept.replace(CAROL.encode(), b"carol@example.tesu", 1))
    try:
        failed = await post(site, "/console/audit/verify", "/console/audit")
        assert failed.status_code == 500 and "NOT intact" in failed.text
        page = await site.get("/console/audit")
        assert "<strong>NOT INTACT</strong>" in page.text and "FAIL" in page.text
    finally:
        victim.write_bytes(kept)
