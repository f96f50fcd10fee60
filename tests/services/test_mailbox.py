"""The mailbox service: RFC 9051 / RFC 7162 semantics, concurrency, notifications."""

from __future__ import annotations

import asyncio

import pytest

from letterlock.app import App
from letterlock.crypto import seal
from letterlock.errors import (
    AlreadyExists,
    InvalidInput,
    MailboxNotAllowed,
    UnknownMailbox,
    UnknownMessage,
)
from letterlock.services.accounts.accounts import Session
from support.env import PASSWORD


def raw(n: int) -> bytes:
    return f"From: a@example.test\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
async def session(app: App) -> Session:
    await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    return await app.accounts.authenticate("bob@example.test", PASSWORD)


async def test_create_rename_delete_subscribe(app: App, session: Session) -> None:
    mb = app.mailboxes
    await mb.create_mailbox(session, "Projects/2025/Q1")
    names = {b.name: b.subscribed for b in await mb.list_mailboxes(session)}
    assert names["Projects/2025/Q1"] and not names["Projects"]
    with pytest.raises(AlreadyExists):
        await mb.create_mailbox(session, "Projects/2025/Q1")
    await mb.rename_mailbox(session, "Projects", "Work")
    names = {b.name for b in await mb.list_mailboxes(session)}
    assert {"Work", "Work/2025", "Work/2025/Q1"} <= names and "Projects" not in names
    await mb.subscribe(session, "Work", True)
    assert (await mb.get_mailbox(session, "Work")).subscribed
    with pytest.raises(MailboxNotAllowed):
        await mb.delete_mailbox(session, "INBOX")
    with pytest.raises(MailboxNotAllowed):
        await mb.rename_mailbox(session, "Work", "Work/2025/inside")
    for bad in ("", "/lead", "trail/", "a//b", "bell\x07"):
        with pytest.raises(InvalidInput):
            await mb.create_mailbox(session, bad)
    await mb.delete_mailbox(session, "Work/2025/Q1")
    with pytest.raises(UnknownMailbox):
        await mb.get_mailbox(session, "Work/2025/Q1")
    assert (await mb.get_mailbox(session, "inbox")).name == "INBOX"


async def test_rename_inbox_moves_its_messages(app: App, session: Session) -> None:
    mb = app.mailboxes
    for i in range(3):
        await mb.append(session.ref, "INBOX", raw(i))
    await mb.rename_mailbox(session, "INBOX", "Old")
    inbox = await mb.get_mailbox(session, "INBOX")
    old = await mb.get_mailbox(session, "Old")
    assert inbox.messages == 0 and old.messages == 3


async def test_append_fetch_flags_expunge(app: App, session: Session) -> None:
    mb = app.mailboxes
    a1 = await mb.append(session.ref, "INBOX", raw(1), ["\\seen", "$Label"])
    await mb.append(session.ref, "INBOX", raw(2))
    inbox = await mb.get_mailbox(session, "INBOX")
    msgs = await mb.messages(session, inbox.id)
    assert [m.uid for m in msgs] == [a1.uid, a1.uid + 1]
    assert msgs[0].flags == {"\\Seen", "$Label"}
    assert msgs[0].size == len(raw(1))
    summary = mb.open_summary(session, msgs[1])
    assert summary.header.startswith(b"From: a@example.test") and summary.size == len(raw(2))
    bodies = await mb.bodies(session, msgs)
    assert bodies == {msgs[0].uid: raw(1), msgs[1].uid: raw(2)}
    with pytest.raises(InvalidInput):
        await mb.store_flags(session, inbox.id, [a1.uid], "add", ["\\Recent"])
    changes, _ = await mb.store_flags(session, inbox.id, [a1.uid + 1], "add", ["\\Deleted"])
    assert changes[0].flags == {"\\Deleted"}
    gone = await mb.expunge(session, inbox.id, [a1.uid + 1])
    assert [g.uid for g in gone] == [a1.uid + 1]
    blobs = await app.cells.get("eu-dublin").blobs.list_ids()
    assert msgs[1].blob_id not in blobs and msgs[0].blob_id in blobs
    with pytest.raises(UnknownMessage):
        await app.cells.get("eu-dublin").blobs.get(msgs[1].blob_id)


async def test_move_keeps_content_and_updates_both(app: App, session: Session) -> None:
    mb = app.mailboxes
    await mb.append(session.ref, "INBOX", raw(1))
    inbox = await mb.get_mailbox(session, "INBOX")
    pairs, gone = await mb.move(session, inbox.id, [1], "Archive")
    assert [p[0] for p in pairs] == [1] and [g.uid for g in gone] == [1]
    archive = await mb.get_mailbox(session, "Archive")
    [moved] = await mb.messages(session, archive.id)
    assert (await mb.bodies(session, [moved]))[moved.uid] == raw(1)


async def test_other_accounts_mailboxes_are_invisible(app: App, session: Session) -> None:
    await app.accounts.create("eve@example.test", "eu-dublin", PASSWORD)
    eve = await app.accounts.authenticate("eve@example.test", PASSWORD)
    bob_inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    with pytest.raises(UnknownMailbox):
        await app.mailboxes.messages(eve, bob_inbox.id)
    with pytest.raises(UnknownMailbox):
        await app.mailboxes.store_flags(eve, bob_inbox.id, [1], "add", ["\\Seen"])


async def test_concurrent_writers_and_readers_stay_consistent(app: App,
                                                              session: Session) -> None:
    mb = app.mailboxes
    inbox = await mb.get_mailbox(session, "INBOX")
    seen: dict[int, list[int]] = {0: [], 1: []}

    async def reader(n: int) -> None:
        for _ in range(20):
            msgs = await mb.messages(session, inbox.id)
            uids = [m.uid for m in msgs]
            assert uids == sorted(uids) and len(set(uids)) == len(uids)
            seen[n].append(len(msgs))
            await asyncio.sleep(0)

    async def writer(base: int) -> list[int]:
        return [(await mb.append(session.ref, "INBOX", raw(base + i))).uid for i in range(25)]

    results = await asyncio.gather(writer(0), writer(100), writer(200), reader(0), reader(1))
    uids = sorted(u for r in results[:3] for u in r)  # type: ignore[union-attr]
    assert uids == list(range(1, 76))
    # Nothing is expunged, so each reader sees the mailbox only grow.
    for counts in seen.values():
        assert counts == sorted(counts) and all(0 <= c <= 75 for c in counts)
    state = await mb.get_mailbox(session, "INBOX")
    assert state.uidnext == 76 and state.messages == 75


async def test_watchers_are_woken_by_delivery(app: App, session: Session) -> None:
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    with app.mailboxes.hub.watch(inbox.id) as changed:
        assert not changed.is_set()
        await app.delivery.deliver(raw(1), [session.ref])
        await asyncio.wait_for(changed.wait(), 1)
    delta = await app.mailboxes.changes_since(session, inbox.id, inbox.highestmodseq)
    assert [m.uid for m in delta.changed] == [1]


async def test_delivery_to_two_regions_seals_each_copy_to_its_owner(app: App) -> None:
    bob, _ = await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    amy, _ = await app.accounts.create("amy@example.test", "us-east", PASSWORD)
    results = await app.delivery.deliver(raw(7), [bob, amy])
    assert all(r.ok for r in results)
    for address, region in (("bob@example.test", "eu-dublin"), ("amy@example.test", "us-east")):
        session = await app.accounts.authenticate(address, PASSWORD)
        inbox = await app.mailboxes.get_mailbox(session, "INBOX")
        [msg] = await app.mailboxes.messages(session, inbox.id)
        assert (await app.mailboxes.bodies(session, [msg]))[msg.uid] == raw(7)
        assert await app.cells.get(region).blobs.list_ids() == [msg.blob_id]
        blob = await app.cells.get(region).blobs.get(msg.blob_id)
        assert session.opener.open(blob, seal.Expect(session.ref.record.id, "body")) == raw(7)


async def test_mailbox_index_is_read_again_only_after_a_change(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    mb = app.mailboxes
    for i in range(3):
        await mb.append(session.ref, "INBOX", raw(i))
    box = (await mb.get_mailbox(session, "INBOX")).id
    store = app.cells.get("eu-dublin").store
    reads = 0
    real = store.mailbox_index

    async def counting(mailbox_id: int):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await real(mailbox_id)

    monkeypatch.setattr(store, "mailbox_index", counting)
    first = await mb.mailbox_index(session, box)
    assert await mb.mailbox_index(session, box) is first and reads == 1
    await mb.store_flags(session, box, [2], "add", ["\\Seen"])
    after = await mb.mailbox_index(session, box)
    assert reads == 2 and after.unseen == first.unseen - 1
    await store.append_messages([])  # no change, no new read
    await mb.append(session.ref, "INBOX", raw(9))  # another process would do the same
    assert (await mb.mailbox_index(session, box)).uids == (1, 2, 3, 4) and reads == 3
