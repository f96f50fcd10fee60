"""Regression (issue 14, point 3): mail kept under a preservation hold is produced by
a later order for the same account. Before, a warrant served after the user had
expunged their mail gave no content at all, though the hold kept it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from letterlock.app import App
from letterlock.services.legal.matters import LegalService
from letterlock.services.legal.production import verify_package

from .harness import make_request
from .matter_support import PASSWORD, Clock, add_bob, clock, legal

__all__ = ["clock", "legal"]

SECOND = (b"From: carol@example.org\r\nTo: bob@example.test\r\nSubject: plans\r\n\r\n"
          b"Tomorrow.\r\n")


def _manifest(package: str | None) -> dict[str, Any]:
    assert package is not None
    return dict(json.loads((Path(package) / "manifest.json").read_text()))


async def _expunge_everything(app: App) -> list[str]:
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    await app.mailboxes.expunge(session, inbox.id, [m.uid for m in msgs])
    assert await app.mailboxes.messages(session, inbox.id) == []
    return [m.blob_id for m in msgs]


async def test_mail_held_by_a_preservation_is_produced_by_a_later_warrant(
        app: App, legal: LegalService, clock: Clock) -> None:
    ref = await add_bob(app)
    await app.delivery.deliver(SECOND, [ref])
    preserve = await legal.file(make_request(instrument="us-preservation",
                                             action="preserve"), "counsel")
    await legal.decide(preserve.id, "counsel")
    blobs = await _expunge_everything(app)

    warrant = await legal.file(make_request(categories=["content", "traffic"]), "counsel")
    produced = await legal.decide(warrant.id, "counsel")
    manifest = _manifest(produced.package)
    content = [i for i in manifest["items"] if i["category"] == "content"]
    assert len(content) == 2, manifest["items"]
    cell = app.cells.get(ref.region)
    held = {hashlib.sha256(await cell.blobs.get(b)).hexdigest() for b in blobs}
    assert {i["sha256"] for i in content} == held
    assert verify_package(Path(produced.package or "")).ok
    # The traffic record lists the held messages with what was known of them.
    traffic = json.loads((Path(produced.package or "") / "traffic" /
                          "bob@example.test.json").read_text())
    assert sorted(e["uid"] for e in traffic) == [1, 2]
    assert all(e.get("held") for e in traffic)


async def test_releasing_a_hold_keeps_the_mail_still_in_the_mailbox(
        app: App, legal: LegalService, clock: Clock) -> None:
    """The hold records what the mailbox held when it was placed; releasing it must
    delete only what the user had expunged meanwhile."""
    ref = await add_bob(app)
    await app.delivery.deliver(SECOND, [ref])
    preserve = await legal.decide((await legal.file(make_request(
        instrument="us-preservation", action="preserve"), "counsel")).id, "counsel")
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    first, second = await app.mailboxes.messages(session, inbox.id)
    await app.mailboxes.expunge(session, inbox.id, [first.uid])
    await legal.close(preserve.id, "counsel")
    cell = app.cells.get(ref.region)
    ids = set(await cell.blobs.list_ids())
    assert first.blob_id not in ids and second.blob_id in ids
    assert [m.uid for m in await app.mailboxes.messages(session, inbox.id)] == [second.uid]


async def test_holds_of_an_older_legal_database_are_upgraded(tmp_path: Path) -> None:
    """Blobs held before holds recorded messages were all expunged ones: they stay
    kept, and are released with their hold."""
    import sqlite3

    from letterlock.storage.legal_sqlite import LEGAL_DB, LegalStore

    with sqlite3.connect(tmp_path / LEGAL_DB) as db:
        db.executescript(
            "CREATE TABLE holds (id INTEGER PRIMARY KEY AUTOINCREMENT, matter_id TEXT, "
            "address TEXT, region TEXT, placed_at TEXT, expires_at TEXT, released_at TEXT);"
            "CREATE TABLE held_blobs (hold_id INTEGER, region TEXT, blob_id TEXT, "
            "PRIMARY KEY (hold_id, blob_id));"
            "INSERT INTO holds VALUES (1, 'M-1', 'bob@example.test', 'us-east', "
            "'2025-01-15T10:00:00+00:00', '2025-04-15T10:00:00+00:00', NULL);"
            "INSERT INTO held_blobs VALUES (1, 'us-east', 'b1');")
    store = LegalStore(tmp_path, fsync=False)
    try:
        assert await store.held_blobs(1) == ["b1"]
        [kept] = await store.held_messages("bob@example.test")
        assert (kept.blob_id, kept.uid) == ("b1", None)
    finally:
        await store.close()
