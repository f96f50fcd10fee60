"""The storage contract suite: one set of tests, run against every implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from letterlock.errors import AlreadyExists, UnknownAccount, UnknownMailbox, UnknownMessage
from letterlock.storage.contracts import BlobStore, CellStore, ControlStore
from letterlock.storage.models import AccountRecord, DigestPack, NewMessage, Region

WHEN = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)


def account(address: str = "bob@example.test", ident: str = "acc1") -> AccountRecord:
    return AccountRecord(ident, address, WHEN, b"p" * 32, b"k" * 16, b"w1", b"w2")


def new(box: int, blob: str, flags: frozenset[str] = frozenset()) -> NewMessage:
    return NewMessage(box, blob, 100, WHEN, flags, b"summary-" + blob.encode())


# ------------------------------------------------------------------ control store


async def test_regions_domains_and_directory(control: ControlStore) -> None:
    await control.add_region(Region("us-east", "US"))
    await control.add_region(Region("eu-dublin", "IE"))
    with pytest.raises(AlreadyExists):
        await control.add_region(Region("us-east", "US"))
    assert [r.id for r in await control.list_regions()] == ["eu-dublin", "us-east"]

    await control.add_domain("example.test")
    with pytest.raises(AlreadyExists):
        await control.add_domain("example.test")
    assert [d.name for d in await control.list_domains()] == ["example.test"]

    await control.assign("bob@example.test", "eu-dublin")
    with pytest.raises(AlreadyExists):
        await control.assign("bob@example.test", "us-east")
    assert await control.lookup("bob@example.test") == "eu-dublin"
    assert await control.lookup("nobody@example.test") is None
    await control.reassign("bob@example.test", "us-east")
    assert await control.list_assignments() == [("bob@example.test", "us-east")]
    await control.unassign("bob@example.test")
    with pytest.raises(UnknownAccount):
        await control.unassign("bob@example.test")
    with pytest.raises(UnknownAccount):
        await control.reassign("bob@example.test", "us-east")


async def test_settings(control: ControlStore) -> None:
    assert await control.get_setting("x") is None
    await control.set_setting("x", "1")
    await control.set_setting("x", "2")
    assert await control.get_setting("x") == "2"


# ------------------------------------------------------------------ blob store


async def test_blobs_put_get_delete(blobs: BlobStore) -> None:
    one, two = await blobs.put_many([b"one", b"two" * 1000])
    assert one != two
    assert await blobs.get(one) == b"one"
    assert await blobs.get_many([one, two]) == {one: b"one", two: b"two" * 1000}
    [three] = await blobs.put_many([b"three"])
    assert three not in (one, two)
    assert await blobs.list_ids() == sorted([one, two, three])
    await blobs.delete_many([one])
    with pytest.raises(UnknownMessage):
        await blobs.get(one)
    with pytest.raises(UnknownMessage):
        await blobs.get_many([two, one])
    assert await blobs.get(three) == b"three"
    assert await blobs.list_ids() == sorted([two, three])
    await blobs.delete_many([one])  # deleting twice is harmless
    assert await blobs.put_many([]) == []


async def test_blobs_concurrent_puts_do_not_overlap(blobs: BlobStore) -> None:
    payloads = [bytes([i]) * (100 + i) for i in range(1, 60)]
    ids = await asyncio.gather(*(blobs.put_many([p]) for p in payloads))
    got = await blobs.get_many([i[0] for i in ids])
    assert [got[i[0]] for i in ids] == payloads


# ------------------------------------------------------------------ accounts


async def test_accounts(cell: CellStore) -> None:
    await cell.create_account(account())
    with pytest.raises(AlreadyExists):
        await cell.create_account(account(ident="other"))
    got = await cell.get_account("bob@example.test")
    assert got == account()
    await cell.update_account_keys("bob@example.test", b"n1", b"n2")
    got = await cell.get_account("bob@example.test")
    assert got is not None and got.wrapped_by_password == b"n1"
    with pytest.raises(UnknownAccount):
        await cell.update_account_keys("x@example.test", b"", b"")
    assert [a.address for a in await cell.list_accounts()] == ["bob@example.test"]


async def test_key_custody_and_certificate(cell: CellStore) -> None:
    await cell.create_account(account())
    got = await cell.get_account("bob@example.test")
    assert got is not None and (got.custody, got.openpgp_cert) == ("sealed", b"")
    cert = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\xc6\x00 binary-safe\n"
    await cell.set_custody("bob@example.test", "e2e", cert)
    got = await cell.get_account("bob@example.test")
    assert got is not None and (got.custody, got.openpgp_cert) == ("e2e", cert)
    assert [(a.custody, a.openpgp_cert) for a in await cell.list_accounts()] == [("e2e", cert)]
    await cell.set_custody("bob@example.test", "sealed", b"")
    got = await cell.get_account("bob@example.test")
    assert got is not None and (got.custody, got.openpgp_cert) == ("sealed", b"")
    with pytest.raises(UnknownAccount):
        await cell.set_custody("x@example.test", "e2e", cert)
    # An account created with a certificate keeps it (a region move copies records).
    moved = replace(account(ident="acc2", address="carol@example.test"), custody="e2e",
                    openpgp_cert=cert)
    await cell.create_account(moved)
    assert await cell.get_account("carol@example.test") == moved


async def test_delete_account_returns_its_blobs(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    await cell.append_messages([new(box.id, "b1"), new(box.id, "b2")])
    assert await cell.delete_account("bob@example.test") == ["b1", "b2"]
    assert await cell.get_account("bob@example.test") is None
    assert await cell.list_mailboxes("acc1") == []


# ------------------------------------------------------------------ mailboxes


async def test_mailbox_lifecycle_and_uidvalidity(cell: CellStore) -> None:
    await cell.create_account(account())
    a = await cell.create_mailbox("acc1", "Work", None, True)
    with pytest.raises(AlreadyExists):
        await cell.create_mailbox("acc1", "Work", None, True)
    assert (a.uidnext, a.highestmodseq, a.messages) == (1, 1, 0)
    await cell.create_mailbox("acc1", "Work/2025", "\\Archive", False)
    await cell.rename_mailbox("acc1", "Work", "Job")
    names = {b.name: b for b in await cell.list_mailboxes("acc1")}
    assert set(names) == {"Job", "Job/2025"}
    assert names["Job/2025"].special_use == "\\Archive"
    assert not names["Job/2025"].subscribed
    # A renamed mailbox must not reuse the UIDVALIDITY it had under the old name.
    assert names["Job"].uidvalidity > a.uidvalidity
    await cell.subscribe("acc1", "Job/2025", True)
    assert (await cell.get_mailbox("acc1", "Job/2025")).subscribed
    await cell.delete_mailbox("acc1", "Job/2025")
    with pytest.raises(UnknownMailbox):
        await cell.get_mailbox("acc1", "Job/2025")
    # Recreating a deleted name gives a new UIDVALIDITY.
    again = await cell.create_mailbox("acc1", "Work", None, True)
    assert again.uidvalidity > names["Job"].uidvalidity


async def test_subscriptions_are_names_not_mailboxes(cell: CellStore) -> None:
    await cell.create_account(account())
    await cell.create_account(account("eve@example.test", "acc2"))
    # A name can be subscribed before (or without) a mailbox of that name.
    await cell.subscribe("acc1", "Later", True)
    await cell.subscribe("acc1", "Later", True)  # twice is once
    await cell.subscribe("acc1", "Gone/child", True)
    assert await cell.list_subscriptions("acc1") == ["Gone/child", "Later"]
    assert await cell.list_subscriptions("acc2") == []
    # Creating the mailbox unsubscribed keeps the earlier subscription...
    later = await cell.create_mailbox("acc1", "Later", None, False)
    assert later.subscribed
    assert (await cell.get_mailbox("acc1", "Later")).subscribed
    # ...and creating one subscribed adds its name.
    await cell.create_mailbox("acc1", "Work", None, True)
    await cell.create_mailbox("acc1", "Work/2025", None, False)
    await cell.create_mailbox("acc1", "Work/2026", None, True)
    assert await cell.list_subscriptions("acc1") == ["Gone/child", "Later", "Work",
                                                     "Work/2026"]
    # Deleting a mailbox leaves its name subscribed (RFC 9051 6.3.9).
    await cell.delete_mailbox("acc1", "Later")
    assert "Later" in await cell.list_subscriptions("acc1")
    recreated = await cell.create_mailbox("acc1", "Later", None, False)
    assert recreated.subscribed
    # Renaming subscribes the new names of subscribed mailboxes and keeps the old ones.
    await cell.rename_mailbox("acc1", "Work", "Job")
    assert await cell.list_subscriptions("acc1") == ["Gone/child", "Job", "Job/2026",
                                                     "Later", "Work", "Work/2026"]
    boxes = {b.name: b.subscribed for b in await cell.list_mailboxes("acc1")}
    assert boxes == {"Job": True, "Job/2025": False, "Job/2026": True, "Later": True}
    # Unsubscribing works for names with and without a mailbox; absent names are fine.
    await cell.subscribe("acc1", "Job", False)
    await cell.subscribe("acc1", "Work", False)
    await cell.subscribe("acc1", "Never", False)
    assert not (await cell.get_mailbox("acc1", "Job")).subscribed
    assert await cell.list_subscriptions("acc1") == ["Gone/child", "Job/2026", "Later",
                                                     "Work/2026"]
    # Another account's list is its own; deleting an account drops its list.
    await cell.subscribe("acc2", "Later", True)
    await cell.delete_account("bob@example.test")
    assert await cell.list_subscriptions("acc1") == []
    assert await cell.list_subscriptions("acc2") == ["Later"]


async def test_light_message_index_leaves_out_summaries(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    await cell.append_messages([new(box.id, "b1"), new(box.id, "b2", frozenset({"$X"}))])
    await cell.store_flags(box.id, [1], "add", frozenset({"\\Seen"}))
    full = await cell.list_messages(box.id)
    light = await cell.list_messages(box.id, with_summary=False)
    assert [m.summary for m in full] == [b"summary-b1", b"summary-b2"]
    assert [m.summary for m in light] == [b"", b""]
    # Everything else is the same as in the full records.
    assert [replace(m, summary=b"") for m in full] == light
    some = await cell.get_messages(box.id, [2, 7], with_summary=False)
    assert [(m.uid, m.flags, m.summary) for m in some] == [(2, frozenset({"$X"}), b"")]
    delta = await cell.changes_since(box.id, 0, with_summary=False)
    assert [(m.uid, m.summary) for m in delta.changed] == [(1, b""), (2, b"")]
    assert (await cell.changes_since(box.id, 0)).changed[0].summary == b"summary-b1"
    with pytest.raises(UnknownMailbox):
        await cell.list_messages(9999, with_summary=False)


async def test_rename_onto_existing_is_refused(cell: CellStore) -> None:
    await cell.create_account(account())
    await cell.create_mailbox("acc1", "A", None, True)
    await cell.create_mailbox("acc1", "A/x", None, True)
    await cell.create_mailbox("acc1", "B/x", None, True)
    with pytest.raises(AlreadyExists):
        await cell.rename_mailbox("acc1", "A", "B")
    with pytest.raises(UnknownMailbox):
        await cell.rename_mailbox("acc1", "Nope", "C")


# ------------------------------------------------------------------ messages


async def test_append_assigns_ascending_uids_and_modseqs(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    first = await cell.append_messages([new(box.id, "b1"), new(box.id, "b2")])
    second = await cell.append_messages([new(box.id, "b3", frozenset({"\\Seen"}))])
    assert [a.uid for a in first + second] == [1, 2, 3]
    modseqs = [a.modseq for a in first + second]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 3
    assert all(a.uidvalidity == box.uidvalidity for a in first)
    state = await cell.get_mailbox_by_id(box.id)
    assert (state.uidnext, state.messages, state.highestmodseq) == (4, 3, modseqs[-1])
    msgs = await cell.list_messages(box.id)
    assert [m.blob_id for m in msgs] == ["b1", "b2", "b3"]
    assert msgs[2].flags == {"\\Seen"} and msgs[0].summary == b"summary-b1"
    assert [m.uid for m in await cell.get_messages(box.id, [3, 1, 99])] == [1, 3]
    with pytest.raises(UnknownMailbox):
        await cell.append_messages([new(9999, "zz")])


async def test_flags_and_unchangedsince(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    await cell.append_messages([new(box.id, "b1"), new(box.id, "b2")])
    changes, refused = await cell.store_flags(box.id, [1, 2], "add", frozenset({"\\Seen"}))
    assert [c.uid for c in changes] == [1, 2] and refused == []
    mid = changes[-1].modseq
    # no-op store does not bump modseq
    again, _ = await cell.store_flags(box.id, [1], "add", frozenset({"\\Seen"}))
    assert again == []
    changes, _ = await cell.store_flags(box.id, [2], "set", frozenset({"$Work"}))
    assert changes[0].flags == {"$Work"} and changes[0].modseq > mid
    changes, refused = await cell.store_flags(box.id, [1, 2], "remove",
                                              frozenset({"\\Seen"}), unchanged_since=mid)
    assert refused == [2] and [c.uid for c in changes] == [1]
    delta = await cell.changes_since(box.id, mid)
    assert {m.uid for m in delta.changed} == {1, 2}


async def test_expunge_copy_and_changes(cell: CellStore) -> None:
    await cell.create_account(account())
    inbox = await cell.create_mailbox("acc1", "INBOX", None, True)
    other = await cell.create_mailbox("acc1", "Other", None, True)
    await cell.append_messages([new(inbox.id, "b1", frozenset({"\\Flagged", "$Old"})),
                                new(inbox.id, "b2"), new(inbox.id, "b3")])
    before = (await cell.get_mailbox_by_id(inbox.id)).highestmodseq
    pairs = await cell.copy_messages(inbox.id, [2, 3], other.id)
    assert [(src, a.uid) for src, a in pairs] == [(2, 1), (3, 2)]
    gone = await cell.expunge(inbox.id, [1, 2, 42])
    assert [e.uid for e in gone] == [1, 2]
    # b1 is referenced nowhere else; b2 still lives on in Other.
    assert [e.orphaned_blob for e in gone] == ["b1", None]
    delta = await cell.changes_since(inbox.id, before)
    assert delta.vanished == (1, 2)
    # The flags an expunged message last had stay known (for sessions not yet told).
    ghosts = await cell.expunged_flags(inbox.id, [1, 2, 3, 42])
    assert sorted(ghosts) == [1, 2]
    assert ghosts[1].flags == frozenset({"\\Flagged", "$Old"})
    assert ghosts[2].flags == frozenset() and ghosts[2].modseq == gone[1].modseq
    assert delta.highestmodseq == (await cell.get_mailbox_by_id(inbox.id)).highestmodseq
    assert [m.uid for m in await cell.list_messages(inbox.id)] == [3]
    # UIDs are never reused
    [appended] = await cell.append_messages([new(inbox.id, "b4")])
    assert appended.uid == 4
    assert await cell.delete_mailbox("acc1", "Other") == ["b2"]


async def test_concurrent_appends_get_distinct_uids(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    results = await asyncio.gather(*(cell.append_messages([new(box.id, f"{i:08x}")])
                                     for i in range(40)))
    uids = sorted(r[0].uid for r in results)
    assert uids == list(range(1, 41))


# ------------------------------------------------------------------ digest packs


async def _box_with(cell: CellStore, count: int) -> int:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    await cell.append_messages([new(box.id, f"b{i}") for i in range(count)])
    return box.id


def _pack_methods(cell: CellStore, kind: str) -> tuple[
        Callable[[DigestPack], Awaitable[bool]],
        Callable[[int, int, int], Awaitable[list[DigestPack]]]]:
    """Digest packs and text packs follow the same storage rules."""
    if kind == "digest":
        return cell.put_digest_pack, cell.get_digest_packs
    return cell.put_text_pack, cell.get_text_packs


@pytest.mark.parametrize("kind", ["digest", "text"])
async def test_pack_is_stored_only_when_whole_and_current(cell: CellStore, kind: str) -> None:
    put, get = _pack_methods(cell, kind)
    box = await _box_with(cell, 5)  # UIDs 1..5
    assert not await put(DigestPack(box, 1, 5, 4, b"short"))
    assert await put(DigestPack(box, 1, 3, 3, b"one-three"))
    assert await put(DigestPack(box, 4, 5, 2, b"four-five"))
    assert [p.data for p in await get(box, 1, 100)] == [
        b"one-three", b"four-five"]
    assert [p.data for p in await get(box, 4, 4)] == [b"four-five"]
    # A wider pack of the same start replaces; a narrower one does not.
    assert await put(DigestPack(box, 1, 5, 5, b"all"))
    assert not await put(DigestPack(box, 1, 3, 3, b"older view"))
    assert [(p.first_uid, p.last_uid, p.count) for p in
            await get(box, 1, 1)] == [(1, 5, 5)]
    with pytest.raises(UnknownMailbox):
        await get(box + 1000, 1, 5)


@pytest.mark.parametrize("kind", ["digest", "text"])
async def test_removing_a_message_removes_the_packs_that_hold_it(cell: CellStore,
                                                                kind: str) -> None:
    put, get = _pack_methods(cell, kind)
    box = await _box_with(cell, 6)
    assert await put(DigestPack(box, 1, 3, 3, b"a"))
    assert await put(DigestPack(box, 4, 6, 3, b"b"))
    await cell.expunge(box, [5])
    assert [p.data for p in await get(box, 1, 100)] == [b"a"]
    # The rest of the range is two messages now: a pack made before the expunge is
    # refused, one made after is taken.
    assert not await put(DigestPack(box, 4, 6, 3, b"stale"))
    assert await put(DigestPack(box, 4, 6, 2, b"fresh"))
    other = await cell.create_mailbox("acc1", "Other", None, True)
    await cell.append_messages([new(other.id, "x")])
    assert await put(DigestPack(other.id, 1, 1, 1, b"o"))
    await cell.delete_mailbox("acc1", "Other")
    await cell.create_account(account("ann@example.test", "acc2"))
    assert len(await get(box, 1, 100)) == 2
    await cell.delete_account("bob@example.test")
    again = await cell.create_mailbox("acc2", "INBOX", None, True)
    assert await get(again.id, 1, 100) == []


async def test_mailbox_index_matches_the_messages(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    empty = await cell.mailbox_index(box.id)
    assert (empty.uids, empty.unseen, empty.first_unseen, empty.size) == ((), 0, None, 0)
    await cell.append_messages([
        new(box.id, "a", frozenset({"\\Seen"})), new(box.id, "b", frozenset({"$Junk"})),
        new(box.id, "c", frozenset({"\\Seen", "\\Deleted", "work"})),
        new(box.id, "d")])
    await cell.expunge(box.id, [4])
    changes, _ = await cell.store_flags(box.id, [1], "add", frozenset({"\\Flagged"}))
    index = await cell.mailbox_index(box.id)
    assert index.uids == (1, 2, 3) and index.runs == ((1, 3),)
    assert index.keywords == frozenset({"$Junk", "work"})
    assert (index.unseen, index.first_unseen, index.deleted) == (1, 2, 1)
    assert index.size == 300
    assert index.highestmodseq == (await cell.get_mailbox_by_id(box.id)).highestmodseq
    assert index.highestmodseq >= changes[0].modseq
    await cell.append_messages([new(box.id, "e"), new(box.id, "f")])  # UIDs 5, 6
    await cell.expunge(box.id, [2])
    later = await cell.mailbox_index(box.id)
    assert later.runs == ((1, 1), (3, 3), (5, 6)) and later.uids_above(3) == [5, 6]
    assert later.last == 6 and later.uids_above(6) == []
    with pytest.raises(UnknownMailbox):
        await cell.mailbox_index(box.id + 1000)


async def test_recent_is_claimed_once(cell: CellStore) -> None:
    await cell.create_account(account())
    box = await cell.create_mailbox("acc1", "INBOX", None, True)
    assert await cell.recent_mark(box.id) == 0
    assert await cell.claim_recent(box.id, 3) == 0      # UIDs 1..3 are the caller's
    assert await cell.claim_recent(box.id, 3) == 3      # nothing left for another
    assert await cell.claim_recent(box.id, 2) == 3      # the mark never goes down
    assert await cell.claim_recent(box.id, 5) == 3      # 4..5 are this caller's
    assert await cell.recent_mark(box.id) == 5
    firsts = await asyncio.gather(*(cell.claim_recent(box.id, 9) for _ in range(8)))
    assert sorted(firsts) == [5] + [9] * 7
    with pytest.raises(UnknownMailbox):
        await cell.claim_recent(box.id + 1000, 1)


async def test_account_usage_counts_every_mailbox_of_the_account_only(
        cell: CellStore) -> None:
    await cell.create_account(account())
    await cell.create_account(account("eve@example.test", "acc2"))
    assert await cell.account_usage("acc1") == (0, 0)
    inbox = await cell.create_mailbox("acc1", "INBOX", None, True)
    work = await cell.create_mailbox("acc1", "Work", None, True)
    other = await cell.create_mailbox("acc2", "INBOX", None, True)
    await cell.append_messages([new(inbox.id, "b1"), new(inbox.id, "b2"),
                                new(work.id, "b3"), new(other.id, "b4")])
    assert await cell.account_usage("acc1") == (3, 300)
    assert await cell.account_usage("acc2") == (1, 100)
    # A copy shares its blob: one more message, no more bytes.
    await cell.copy_messages(inbox.id, [2], work.id)
    assert await cell.account_usage("acc1") == (4, 300)
    await cell.expunge(inbox.id, [1, 2])
    assert await cell.account_usage("acc1") == (2, 200)
