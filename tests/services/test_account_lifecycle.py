"""Deleting an account and moving it to another region: nothing of it stays in the old
cell, its mail still opens in the new one, and an open legal matter blocks both.
Also the composition root's legal wiring: holds keep expunged mail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pysequoia import Tsk

from letterlock.app import App
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.records import decode
from letterlock.cli.main import cli
from letterlock.errors import (
    MatterOpen,
    Refused,
    UnknownAccount,
    UnknownMessage,
    UnknownRegion,
)
from letterlock.services.accounts.accounts import AccountRef
from letterlock.storage.models import MessageRecord
from support.env import FAST_KDF_ENV, PASSWORD

ADDRESS = "bob@example.test"


def _message(n: int) -> bytes:
    return (f"From: alice@example.org\r\nTo: {ADDRESS}\r\nSubject: note {n}\r\n"
            f"Message-ID: <n{n}@example.org>\r\n\r\nsecret-marker-{n}\r\n").encode()


async def _bob_with_mail(app: App, region: str = "us-east") -> AccountRef:
    ref, _ = await app.accounts.create(ADDRESS, region, PASSWORD)
    for n in range(3):
        await app.mailboxes.append(ref, "INBOX", _message(n), flags=["\\Seen"] if n else [])
    session = await app.accounts.authenticate(ADDRESS, PASSWORD)
    await app.mailboxes.create_mailbox(session, "Projects/2026")
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    await app.mailboxes.copy(session, inbox.id, [2], "Projects/2026")  # shares a blob
    await app.mailboxes.append(ref, "Archive", _message(9))
    return ref


async def _everything(app: App, region: str, account_id: str) -> list[MessageRecord]:
    store = app.cells.get(region).store
    out: list[MessageRecord] = []
    for box in await store.list_mailboxes(account_id):
        out += await store.list_messages(box.id)
    return out


def _logged(app: App) -> list[AuditEvent]:
    log = app.audit.log  # type: ignore[attr-defined]
    events = []
    for _, leaf in log.iter_leaves(0, log.size):
        record = decode(leaf)
        if record.event is not None:
            events.append(record.event)
    return events


def _pack_bytes(app: App, region: str) -> bytes:
    root = app.config.region_dir(region) / "blobs"
    return b"".join(p.read_bytes() for p in sorted(root.glob("*.pack")))


async def _assert_gone(app: App, region: str, account_id: str,
                       blobs: dict[str, bytes]) -> None:
    cell = app.cells.get(region)
    assert await cell.store.get_account(ADDRESS) is None
    assert await cell.store.list_mailboxes(account_id) == []
    packed = _pack_bytes(app, region)
    for blob_id, data in blobs.items():
        with pytest.raises(UnknownMessage):
            await cell.blobs.get(blob_id)
        # The ciphertext itself is overwritten, not merely unlinked from metadata.
        assert data[100:164] not in packed


async def test_delete_removes_account_and_every_blob(app: App) -> None:
    ref = await _bob_with_mail(app)
    cell = app.cells.get("us-east")
    msgs = await _everything(app, "us-east", ref.record.id)
    assert len(msgs) == 5
    blobs = await cell.blobs.get_many(sorted({m.blob_id for m in msgs}))
    assert len(blobs) == 4  # the copy shares its blob
    await app.accounts.delete(ADDRESS, actor="root")
    assert await app.control.lookup(ADDRESS) is None
    await _assert_gone(app, "us-east", ref.record.id, blobs)
    with pytest.raises(UnknownAccount):
        await app.accounts.resolve(ADDRESS)
    deleted = [e for e in _logged(app) if e.type is EventType.ADMIN_ACCOUNT_DELETED]
    assert [(e.account, e.actor, dict(e.details)) for e in deleted] == \
        [(ADDRESS, "root", {"region": "us-east"})]
    # The address can be used again, with a fresh key.
    fresh, _ = await app.accounts.create(ADDRESS, "eu-dublin", PASSWORD)
    assert fresh.record.key_id != ref.record.key_id


async def test_delete_unknown_account(app: App) -> None:
    with pytest.raises(UnknownAccount):
        await app.accounts.delete("nobody@example.test")


async def test_move_keeps_mail_readable_and_leaves_nothing_behind(app: App) -> None:
    ref = await _bob_with_mail(app, "us-east")
    before_session = await app.accounts.authenticate(ADDRESS, PASSWORD)
    old_msgs = await _everything(app, "us-east", ref.record.id)
    old_blobs = await app.cells.get("us-east").blobs.get_many(
        sorted({m.blob_id for m in old_msgs}))
    expected: dict[str, list[tuple[bytes, frozenset[str]]]] = {}
    for box in await app.mailboxes.list_mailboxes(before_session):
        msgs = await app.mailboxes.messages(before_session, box.id)
        bodies = await app.mailboxes.bodies(before_session, msgs)
        expected[box.name] = [(bodies[m.uid], m.flags) for m in msgs]

    moved = await app.accounts.move(ADDRESS, "eu-dublin", actor="root", settle_s=0)
    assert moved.region == "eu-dublin"
    assert await app.control.lookup(ADDRESS) == "eu-dublin"
    await _assert_gone(app, "us-east", ref.record.id, old_blobs)

    session = await app.accounts.authenticate(ADDRESS, PASSWORD)
    assert session.ref.region == "eu-dublin"
    got: dict[str, list[tuple[bytes, frozenset[str]]]] = {}
    for box in await app.mailboxes.list_mailboxes(session):
        msgs = await app.mailboxes.messages(session, box.id)
        bodies = await app.mailboxes.bodies(session, msgs)
        got[box.name] = [(bodies[m.uid], m.flags) for m in msgs]
        for m in msgs:  # summaries were copied sealed and still open
            assert app.mailboxes.open_summary(session, m).size == m.size
    assert got == expected
    new_msgs = await _everything(app, "eu-dublin", ref.record.id)
    assert len({m.blob_id for m in new_msgs}) == 4  # blob sharing preserved
    moved_events = [e for e in _logged(app) if e.type is EventType.ADMIN_ACCOUNT_MOVED]
    assert [dict(e.details) for e in moved_events] == \
        [{"from": "us-east", "to": "eu-dublin", "messages": "5"}]
    # New mail is delivered to the new region.
    await app.delivery.deliver(_message(10), [await app.accounts.resolve(ADDRESS)])
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    assert inbox.messages == 4


async def test_delivery_racing_the_move_is_carried_over(app: App) -> None:
    """A delivery that looked up the old region just before the directory switched
    lands in the old cell during the settle time and is copied, not deleted."""
    await _bob_with_mail(app, "us-east")
    stale_ref = await app.accounts.resolve(ADDRESS)
    move = asyncio.create_task(app.accounts.move(ADDRESS, "eu-dublin", settle_s=0.5))
    while await app.control.lookup(ADDRESS) != "eu-dublin":
        await asyncio.sleep(0.005)
    await app.mailboxes.append(stale_ref, "INBOX", _message(42))
    await move
    session = await app.accounts.authenticate(ADDRESS, PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    bodies = await app.mailboxes.bodies(session, await app.mailboxes.messages(session,
                                                                              inbox.id))
    assert any(b"secret-marker-42" in body for body in bodies.values())
    assert await app.cells.get("us-east").store.get_account(ADDRESS) is None


async def test_move_refusals(app: App) -> None:
    await _bob_with_mail(app, "us-east")
    with pytest.raises(UnknownRegion):
        await app.accounts.move(ADDRESS, "mars-1")
    with pytest.raises(Refused, match="already lives"):
        await app.accounts.move(ADDRESS, "us-east")
    with pytest.raises(UnknownAccount):
        await app.accounts.move("nobody@example.test", "eu-dublin")


async def test_moving_to_the_current_region_finishes_an_interrupted_move(app: App) -> None:
    ref = await _bob_with_mail(app, "us-east")
    # An interrupted move left a copy in eu-dublin after the directory switched back.
    stale = app.cells.get("eu-dublin")
    await stale.store.create_account(ref.record)
    await stale.store.create_mailbox(ref.record.id, "INBOX", None, True)
    await app.accounts.move(ADDRESS, "us-east")
    assert await stale.store.get_account(ADDRESS) is None
    assert await app.accounts.resolve(ADDRESS) == ref


def _request(target: str = ADDRESS, action: str = "preserve") -> dict[str, Any]:
    served = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # holds run from today
    return {
        "received_at": served, "served_at": served,
        "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                   "judge_validated": True, "verified": True},
        "instrument": "us-preservation" if action == "preserve" else "us-warrant",
        "action": action, "categories": ["content"], "targets": [target],
        "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
        "emergency": False, "gag": None, "renewal_of_served_at": None,
    }


async def test_open_matter_refuses_delete_and_move(app: App) -> None:
    ref = await _bob_with_mail(app, "us-east")
    matter = await app.legal.file(_request(), "lee")
    with pytest.raises(MatterOpen, match=matter.id):
        await app.accounts.delete(ADDRESS)
    with pytest.raises(MatterOpen, match=matter.id):
        await app.accounts.move(ADDRESS, "eu-dublin")
    # Nothing was touched.
    assert await app.control.lookup(ADDRESS) == "us-east"
    assert len(await _everything(app, "us-east", ref.record.id)) == 5
    await app.legal.close(matter.id, "lee")
    await app.accounts.move(ADDRESS, "eu-dublin", settle_s=0)
    await app.accounts.delete(ADDRESS)
    assert await app.control.lookup(ADDRESS) is None


async def test_hold_from_the_app_keeps_expunged_mail(app: App) -> None:
    """The composition root registers the legal retention hook: mail expunged by the
    owner under a hold leaves the owner's view but its sealed blob stays stored."""
    await _bob_with_mail(app, "us-east")
    matter = await app.legal.file(_request(), "lee")
    decided = await app.legal.decide(matter.id, "lee")
    assert [h.address for h in decided.holds] == [ADDRESS]
    session = await app.accounts.authenticate(ADDRESS, PASSWORD)
    box = await app.mailboxes.get_mailbox(session, "Archive")
    [msg] = await app.mailboxes.messages(session, box.id)
    await app.mailboxes.expunge(session, box.id, [msg.uid])
    assert await app.mailboxes.messages(session, box.id) == []
    blobs = app.cells.get("us-east").blobs
    assert await blobs.get(msg.blob_id)  # kept under the hold
    await app.legal.close(matter.id, "lee")  # releasing the hold deletes it
    with pytest.raises(UnknownMessage):
        await blobs.get(msg.blob_id)


def test_cli_user_move_and_delete(tmp_path: Path) -> None:
    runner = CliRunner(env={**FAST_KDF_ENV, "LETTERLOCK_HOME": ""})
    home = str(tmp_path / "home")

    def call(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli, ["--home", home, *args], input=stdin)

    assert call("init").exit_code == 0
    assert call("user", "add", ADDRESS, "--region", "us-east", "--password-stdin",
                stdin=PASSWORD + "\n").exit_code == 0
    moved = call("user", "move", ADDRESS, "--region", "eu-dublin")
    assert moved.exit_code == 0, moved.output
    assert "moved bob@example.test to region eu-dublin" in moved.output
    listed = call("user", "list")
    assert "eu-dublin" in listed.output
    again = call("user", "move", ADDRESS, "--region", "eu-dublin")
    assert again.exit_code == 7 and "already lives" in again.output
    nowhere = call("user", "move", ADDRESS, "--region", "mars-1")
    assert nowhere.exit_code == 4
    refused = call("user", "delete", ADDRESS)  # no --yes, and "n" at the prompt
    assert refused.exit_code != 0
    deleted = call("user", "delete", ADDRESS, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert ADDRESS not in call("user", "list").output
    assert call("user", "delete", ADDRESS, "--yes").exit_code == 4


async def test_move_carries_subscriptions_to_names_without_a_mailbox(app: App) -> None:
    ref = await _bob_with_mail(app, "us-east")
    cell = app.cells.get("us-east")
    await cell.store.subscribe(ref.record.id, "Lists/not-yet-created", True)
    before = await cell.store.list_subscriptions(ref.record.id)
    await app.accounts.move(ADDRESS, "eu-dublin", actor="root", settle_s=0)
    after = await app.cells.get("eu-dublin").store.list_subscriptions(ref.record.id)
    assert "Lists/not-yet-created" in after and after == before


async def test_move_keeps_end_to_end_custody(app: App) -> None:
    await _bob_with_mail(app, "us-east")
    public = str(Tsk.generate("Bob <bob@example.test>").extract_certificate()).encode()
    before = await app.accounts.set_end_to_end(ADDRESS, PASSWORD, public)
    moved = await app.accounts.move(ADDRESS, "eu-dublin", actor="root", settle_s=0)
    after = await app.accounts.resolve(ADDRESS)
    assert moved.region == after.region == "eu-dublin"
    assert (after.record.custody, after.record.openpgp_cert) == \
        ("e2e", before.record.openpgp_cert)
    assert await app.cells.get("us-east").store.get_account(ADDRESS) is None
