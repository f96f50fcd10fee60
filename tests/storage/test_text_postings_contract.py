"""The storage contract for text postings (services/mail/text_postings.py), on every
cell store: a posting is stored with its message, in the same append, and removed
in the same transaction as the message (expunge, MOVE's expunge, mailbox and
account deletion); a copy carries none."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from letterlock.errors import UnknownMailbox
from letterlock.storage.contracts import CellStore
from letterlock.storage.models import AccountRecord, NewMessage

WHEN = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)


def _posted(box: int, n: int, posting: bool = True) -> NewMessage:
    msg = NewMessage(box, f"b{n}", 100, WHEN, frozenset(), b"summary")
    return replace(msg, posting=b"sealed-%d" % n, posting_key=b"k" * 32) if posting else msg


async def _cell_with_box(cell: CellStore, name: str = "INBOX") -> int:
    if not await cell.list_mailboxes("acc1"):
        await cell.create_account(AccountRecord("acc1", "bob@example.test", WHEN,
                                                b"p" * 32, b"k" * 16, b"w1", b"w2"))
    return (await cell.create_mailbox("acc1", name, None, True)).id


async def test_postings_are_stored_with_their_messages(cell: CellStore) -> None:
    box = await _cell_with_box(cell)
    await cell.append_messages([_posted(box, 1), _posted(box, 2, posting=False),
                                _posted(box, 3)])
    found = await cell.get_text_postings(box, 1, 100)
    assert [(p.uid, p.key, p.data) for p in found] == [
        (1, b"k" * 32, b"sealed-1"), (3, b"k" * 32, b"sealed-3")]
    assert [p.uid for p in await cell.get_text_postings(box, 2, 3)] == [3]
    await cell.delete_text_postings(box, [1, 2])
    assert [p.uid for p in await cell.get_text_postings(box, 1, 100)] == [3]
    with pytest.raises(UnknownMailbox):
        await cell.get_text_postings(box + 1000, 1, 5)


async def test_postings_go_with_their_messages(cell: CellStore) -> None:
    box = await _cell_with_box(cell)
    await cell.append_messages([_posted(box, n) for n in range(1, 5)])
    await cell.expunge(box, [2])
    assert [p.uid for p in await cell.get_text_postings(box, 1, 100)] == [1, 3, 4]
    # MOVE: a copy (which carries no posting) then the source's expunge.
    other = await _cell_with_box(cell, "Archive")
    await cell.copy_messages(box, [3], other)
    await cell.expunge(box, [3])
    assert [p.uid for p in await cell.get_text_postings(box, 1, 100)] == [1, 4]
    assert await cell.get_text_postings(other, 1, 100) == []
    await cell.append_messages([_posted(other, 9)])
    await cell.delete_mailbox("acc1", "Archive")
    again = await _cell_with_box(cell, "Archive")
    assert await cell.get_text_postings(again, 1, 100) == []
    await cell.delete_account("bob@example.test")
    await cell.create_account(AccountRecord("acc2", "ann@example.test", WHEN, b"p" * 32,
                                            b"k" * 16, b"w1", b"w2"))
    fresh = (await cell.create_mailbox("acc2", "INBOX", None, True)).id
    await cell.append_messages([_posted(fresh, 1, posting=False)])
    assert await cell.get_text_postings(fresh, 1, 100) == []
