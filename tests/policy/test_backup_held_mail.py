"""Mail kept by a preservation hold survives a backup and a restore of its region
(issue 15 point 4): the backup copies the blobs only the hold names, the restore
puts them back at the ids the legal records know, and a later warrant produces them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from letterlock.app import App
from letterlock.services.legal.matters import LegalService
from letterlock.services.operations.backup import BackupService

from .harness import make_request
from .matter_support import PASSWORD, Clock, add_bob, clock, legal

__all__ = ["clock", "legal"]


async def test_held_mail_is_backed_up_restored_and_produced(
        app: App, legal: LegalService, clock: Clock, tmp_path: Path) -> None:
    ref = await add_bob(app)
    preserve = await legal.file(make_request(instrument="us-preservation",
                                             action="preserve"), "counsel")
    await legal.decide(preserve.id, "counsel")
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    [message] = await app.mailboxes.messages(session, inbox.id)
    await app.mailboxes.expunge(session, inbox.id, [message.uid])
    cell = app.cells.get(ref.region)
    sealed = await cell.blobs.get(message.blob_id)  # kept by the hold only

    backups = BackupService(app.cells, app.control, legal, app.audit, app.peers,
                            app.config.home)
    done = await backups.backup("us-east", tmp_path / "backup")
    assert done.manifest.counts["messages"] == 0
    assert done.manifest.counts["held_blobs"] == 1

    await cell.blobs.delete_many([message.blob_id])  # the region's data is lost
    restored = await backups.restore("us-east", tmp_path / "backup", force=True)
    assert restored.held_missing == 0
    assert await cell.blobs.get(message.blob_id) == sealed

    warrant = await legal.file(make_request(categories=["content"]), "counsel")
    produced = await legal.decide(warrant.id, "counsel")
    assert produced.package is not None
    manifest = json.loads((Path(produced.package) / "manifest.json").read_text())
    content = [i["sha256"] for i in manifest["items"] if i["category"] == "content"]
    assert content == [hashlib.sha256(sealed).hexdigest()]
