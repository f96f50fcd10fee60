"""Several processes sharing one region's PostgreSQL database: what the contract suite
cannot show with a single store instance."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from letterlock.storage.models import AccountRecord, MailboxRecord, NewMessage
from letterlock.storage.postgres import ChangeFeed, PostgresCellStore

WHEN = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
TESTS = Path(__file__).resolve().parent.parent


def msg(box: int, blob: str) -> NewMessage:
    return NewMessage(box, blob, 10, WHEN, frozenset(), b"s")


@pytest.fixture
async def pair(postgres_db: str) -> AsyncIterator[tuple[PostgresCellStore, PostgresCellStore]]:
    """Two stores on one database, as two front-end processes would have them."""
    one, two = PostgresCellStore(postgres_db), PostgresCellStore(postgres_db)
    await one.create_account(AccountRecord("acc1", "bob@example.test", WHEN, b"p" * 32,
                                           b"k" * 16, b"w1", b"w2"))
    yield one, two
    await one.close()
    await two.close()


async def boxes(store: PostgresCellStore, *names: str) -> list[MailboxRecord]:
    return [await store.create_mailbox("acc1", n, None, True) for n in names]


async def next_id(feed: ChangeFeed) -> int:
    return await asyncio.wait_for(anext(feed), timeout=10)


async def test_two_stores_appending_concurrently_get_distinct_ascending_uids(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    one, two = pair
    [box] = await boxes(one, "INBOX")

    async def writer(store: PostgresCellStore, tag: str) -> list[tuple[int, int]]:
        got = []
        for i in range(30):
            # batches of 1-3 messages, as group commits would send them
            batch = [msg(box.id, f"{tag}-{i}-{j}") for j in range(1 + i % 3)]
            got += [(a.uid, a.modseq) for a in await store.append_messages(batch)]
        return got

    results = await asyncio.gather(*(writer(s, f"{n}{k}") for n, s in (("a", one), ("b", two))
                                     for k in range(3)))
    for mine in results:  # each writer sees its own appends ascend
        assert [u for u, _ in mine] == sorted(u for u, _ in mine)
    uids = sorted(u for mine in results for u, _ in mine)
    modseqs = sorted(m for mine in results for _, m in mine)
    assert uids == list(range(1, len(uids) + 1))
    assert len(set(modseqs)) == len(modseqs)
    state = await two.get_mailbox_by_id(box.id)
    assert (state.uidnext, state.messages, state.highestmodseq) == (
        len(uids) + 1, len(uids), modseqs[-1])
    listed = await one.list_messages(box.id)
    assert [m.uid for m in listed] == uids


async def test_two_os_processes_append_to_one_mailbox(postgres_db: str) -> None:
    store = PostgresCellStore(postgres_db)
    try:
        await store.create_account(AccountRecord("acc1", "bob@example.test", WHEN, b"p" * 32,
                                                 b"k" * 16, b"w1", b"w2"))
        [box] = await boxes(store, "INBOX")
        feed = await store.watch_changes()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])}
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "support.pg_appender", postgres_db, str(box.id), "40", tag,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
            for tag in ("p", "q")]
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"READY"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), 120) for proc in procs]
        assert [p.returncode for p in procs] == [0, 0]
        per_process = [[int(line.split()[1]) for line in out.decode().splitlines()
                        if line.startswith("UID")] for out, _ in outputs]
        for uids in per_process:
            assert len(uids) == 40 and uids == sorted(uids)
        assert sorted(per_process[0] + per_process[1]) == list(range(1, 81))
        # This process, listening, was told about the other processes' commits.
        assert await next_id(feed) == box.id
        await feed.aclose()
    finally:
        await store.close()


async def test_watcher_sees_changes_committed_by_another_store(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    one, two = pair
    inbox, other = await boxes(one, "INBOX", "Other")
    feed = await one.watch_changes()
    try:
        await two.append_messages([msg(inbox.id, "b1"), msg(inbox.id, "b2")])
        assert await next_id(feed) == inbox.id
        await two.store_flags(inbox.id, [1], "add", frozenset({"\\Seen"}))
        assert await next_id(feed) == inbox.id
        await two.copy_messages(inbox.id, [2], other.id)
        assert await next_id(feed) == other.id
        await two.expunge(inbox.id, [1])
        assert await next_id(feed) == inbox.id
        # a no-op STORE commits nothing and tells nobody; the next change comes next
        await two.store_flags(inbox.id, [2], "remove", frozenset({"\\Seen"}))
        await two.delete_mailbox("acc1", "Other")
        assert await next_id(feed) == other.id
    finally:
        await feed.aclose()


async def test_copy_racing_expunge_never_orphans_a_blob_in_use(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    one, two = pair
    src, dst = await boxes(one, "Src", "Dst")
    for round_ in range(25):
        blob = f"race{round_:04d}"
        [appended] = await one.append_messages([msg(src.id, blob)])
        copied, gone = await asyncio.gather(
            one.copy_messages(src.id, [appended.uid], dst.id),
            two.expunge(src.id, [appended.uid]))
        assert [e.uid for e in gone] == [appended.uid]
        in_dst = {m.blob_id for m in await two.list_messages(dst.id)}
        if gone[0].orphaned_blob is not None:
            # reported unreferenced: then the copy must not have happened
            assert copied == [] and blob not in in_dst
        else:
            assert copied != [] and blob in in_dst


async def test_expunging_the_last_two_copies_at_once_reports_the_orphan_once(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    one, two = pair
    a, b = await boxes(one, "A", "B")
    for round_ in range(15):
        blob = f"twin{round_:04d}"
        [first] = await one.append_messages([msg(a.id, blob)])
        [(_, second)] = await one.copy_messages(a.id, [first.uid], b.id)
        x, y = await asyncio.gather(one.expunge(a.id, [first.uid]),
                                    two.expunge(b.id, [second.uid]))
        reported = [e.orphaned_blob for e in x + y if e.orphaned_blob]
        assert reported == [blob]


async def test_mixed_concurrent_work_from_two_stores_does_not_fail(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    """Copies in both directions, flag changes and expunges on two stores at once:
    the lock order keeps them from deadlocking (or the retry absorbs it)."""
    one, two = pair
    a, b = await boxes(one, "A", "B")
    await one.append_messages([msg(a.id, f"a{i}") for i in range(20)]
                              + [msg(b.id, f"b{i}") for i in range(20)])

    async def churn(store: PostgresCellStore, src: int, dst: int) -> None:
        for i in range(15):
            await store.copy_messages(src, [1 + i, 2 + i], dst)
            await store.store_flags(dst, [1 + i, 3 + i], "add", frozenset({f"$k{i}"}))
            await store.expunge(src, [20 - i])
            await store.append_messages([msg(src, f"n{src}-{i}"), msg(dst, f"n{dst}-{i}")])

    await asyncio.gather(churn(one, a.id, b.id), churn(two, b.id, a.id),
                         churn(two, a.id, b.id), churn(one, b.id, a.id))
    for box in (a, b):
        state = await one.get_mailbox_by_id(box.id)
        listed = await two.list_messages(box.id)
        assert state.messages == len(listed)
        assert state.uidnext > max(m.uid for m in listed)
        assert state.highestmodseq >= max(m.modseq for m in listed)


async def test_forward_changes_relays_into_a_callback_and_survives_a_dropped_connection(
        pair: tuple[PostgresCellStore, PostgresCellStore], postgres_db: str) -> None:
    one, two = pair
    [box] = await boxes(one, "INBOX")
    seen: asyncio.Queue[int] = asyncio.Queue()
    listening = asyncio.create_task(one.forward_changes(seen.put_nowait, retry_s=0.05))
    try:
        # appends are retried until the listener is up (LISTEN starts asynchronously)
        async def next_seen() -> int:
            for i in range(100):
                await two.append_messages([msg(box.id, f"fw{i}-{uuid.uuid4().hex}")])
                try:
                    return await asyncio.wait_for(seen.get(), 0.2)
                except TimeoutError:
                    continue
            raise AssertionError("no notification relayed")

        assert await next_seen() == box.id
        # Kill the listening backend: the relay reconnects and goes on.
        with psycopg.connect(postgres_db, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'").fetchall()
        assert killed == [(True,)]
        while not seen.empty():
            seen.get_nowait()
        assert await next_seen() == box.id
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def test_internaldate_keeps_its_zone(
        pair: tuple[PostgresCellStore, PostgresCellStore]) -> None:
    """IMAP reports INTERNALDATE with the zone it was given (RFC 9051 2.3.3)."""
    one, _ = pair
    [box] = await boxes(one, "INBOX")
    dublin_summer = datetime(2025, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    await one.append_messages([NewMessage(box.id, "z1", 10, dublin_summer, frozenset(), b"s")])
    [got] = await one.list_messages(box.id)
    assert got.internaldate == dublin_summer
    assert got.internaldate.utcoffset() == timedelta(hours=1)
