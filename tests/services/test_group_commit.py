"""The group committer: batching, pipelining and failure attribution."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from letterlock.errors import UnknownMailbox
from letterlock.services.cells import GroupCommitter
from letterlock.storage.memory import MemoryBlobStore, MemoryCellStore
from letterlock.storage.models import AccountRecord, Appended, NewMessage

WHEN = datetime(2025, 1, 1, tzinfo=UTC)


class SlowCellStore(MemoryCellStore):
    """Metadata commits that take a while, and a record of batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def append_messages(self, messages: Sequence[NewMessage]) -> list[Appended]:
        await asyncio.sleep(0.01)
        self.batches.append(len(messages))
        return await super().append_messages(messages)


async def setup() -> tuple[SlowCellStore, MemoryBlobStore, int]:
    store, blobs = SlowCellStore(), MemoryBlobStore()
    await store.create_account(AccountRecord("a", "a@example.test", WHEN, b"", b"", b"", b""))
    box = await store.create_mailbox("a", "INBOX", None, True)
    return store, blobs, box.id


def msg(box: int) -> NewMessage:
    return NewMessage(box, "", 3, WHEN, frozenset(), b"s")


async def test_concurrent_appends_share_commits_and_all_land() -> None:
    store, blobs, box = await setup()
    committer = GroupCommitter(store, blobs)
    results = await asyncio.gather(*(committer.append([msg(box)], [b"x%d" % i])
                                     for i in range(100)))
    assert sorted(r[0].uid for r in results) == list(range(1, 101))
    assert len(store.batches) < 100  # shared, not one commit each
    stored = await store.list_messages(box)
    assert sorted(await blobs.list_ids()) == sorted(m.blob_id for m in stored)


async def test_appends_arriving_during_the_last_commit_are_not_stranded() -> None:
    # Regression: appends that arrived while the flusher awaited its final metadata
    # commit once waited forever (no new flusher starts while one is alive).
    store, blobs, box = await setup()
    committer = GroupCommitter(store, blobs)
    first = asyncio.create_task(committer.append([msg(box)], [b"a"]))
    await asyncio.sleep(0.005)  # the first batch's metadata commit is in flight
    second = await asyncio.wait_for(committer.append([msg(box)], [b"b"]), 2)
    assert (await first)[0].uid == 1 and second[0].uid == 2


async def test_one_bad_append_does_not_fail_its_batch() -> None:
    store, blobs, box = await setup()
    committer = GroupCommitter(store, blobs)
    good = [committer.append([msg(box)], [b"g%d" % i]) for i in range(5)]
    bad = committer.append([msg(9999)], [b"bad"])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], UnknownMailbox)
    assert sorted(r[0].uid for r in results[:-1]) == [1, 2, 3, 4, 5]  # type: ignore[index]


async def test_blob_count_must_match() -> None:
    store, blobs, box = await setup()
    with pytest.raises(ValueError):
        await GroupCommitter(store, blobs).append([msg(box)], [])
