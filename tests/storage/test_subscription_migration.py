"""Cells made before the subscription list kept a ``subscribed`` flag per mailbox;
opening such a cell copies those flags into the list once."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from letterlock.storage.models import AccountRecord
from letterlock.storage.sqlite import SqliteCellStore

WHEN = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
ACCOUNT = AccountRecord("acc1", "bob@example.test", WHEN, b"p" * 32, b"k" * 16, b"w1", b"w2")


async def test_sqlite_cell_copies_old_flags_once(tmp_path: Path) -> None:
    path = tmp_path / "cell.sqlite3"
    store = SqliteCellStore(path)
    await store.create_account(ACCOUNT)
    await store.create_mailbox("acc1", "INBOX", None, False)
    await store.create_mailbox("acc1", "Work", None, False)
    await store.close()
    # Make the file look like one written before the list existed.
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE subscriptions")
        db.execute("DELETE FROM cell_meta WHERE key='subscriptions_v1'")
        db.execute("UPDATE mailboxes SET subscribed=1 WHERE name='Work'")
    store = SqliteCellStore(path)
    try:
        assert await store.list_subscriptions("acc1") == ["Work"]
        assert (await store.get_mailbox("acc1", "Work")).subscribed
        await store.subscribe("acc1", "Work", False)
    finally:
        await store.close()
    # Reopening does not copy the (now mirrored, and cleared) flags again.
    store = SqliteCellStore(path)
    try:
        assert await store.list_subscriptions("acc1") == []
        assert not (await store.get_mailbox("acc1", "Work")).subscribed
    finally:
        await store.close()


async def test_postgres_cell_copies_old_flags_once(request: pytest.FixtureRequest) -> None:
    from letterlock.storage.postgres import PostgresCellStore

    url: str = request.getfixturevalue("postgres_db")
    store = PostgresCellStore(url)
    await store.create_account(ACCOUNT)
    await store.create_mailbox("acc1", "Work", None, False)
    await store.close()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE subscriptions")
        db.execute("DELETE FROM cell_meta WHERE key='subscriptions_v1'")
        db.execute("UPDATE mailboxes SET subscribed=true WHERE name='Work'")
    store = PostgresCellStore(url)
    try:
        assert await store.list_subscriptions("acc1") == ["Work"]
        assert (await store.get_mailbox("acc1", "Work")).subscribed
    finally:
        await store.close()


async def test_sqlite_cell_gains_the_vanished_flags_column(tmp_path: Path) -> None:
    from letterlock.storage.models import NewMessage

    path = tmp_path / "cell.sqlite3"
    store = SqliteCellStore(path)
    await store.create_account(ACCOUNT)
    box = await store.create_mailbox("acc1", "INBOX", None, True)
    await store.append_messages([NewMessage(box.id, "b1", 10, WHEN, frozenset({"$A"}), b"s"),
                                 NewMessage(box.id, "b2", 10, WHEN, frozenset(), b"s")])
    await store.expunge(box.id, [1])
    await store.close()
    with sqlite3.connect(path) as db:  # the table as the first release made it
        db.execute("CREATE TABLE old_vanished (mailbox_id INTEGER NOT NULL, uid INTEGER "
                   "NOT NULL, modseq INTEGER NOT NULL, PRIMARY KEY (mailbox_id, uid)) "
                   "WITHOUT ROWID")
        db.execute("INSERT INTO old_vanished SELECT mailbox_id, uid, modseq FROM vanished")
        db.execute("DROP TABLE vanished")
        db.execute("ALTER TABLE old_vanished RENAME TO vanished")
    store = SqliteCellStore(path)
    try:
        await store.store_flags(box.id, [2], "add", frozenset({"$B"}))
        await store.expunge(box.id, [2])
        ghosts = await store.expunged_flags(box.id, [1, 2])
        assert ghosts[1].flags == frozenset()  # expunged before flags were kept
        assert ghosts[2].flags == frozenset({"$B"})
    finally:
        await store.close()


async def test_sqlite_cell_made_before_the_kept_count_counts_its_messages(
        tmp_path: Path) -> None:
    from letterlock.storage.models import NewMessage

    path = tmp_path / "cell.sqlite3"
    store = SqliteCellStore(path)
    await store.create_account(ACCOUNT)
    box = await store.create_mailbox("acc1", "INBOX", None, False)
    await store.append_messages([NewMessage(box.id, f"b{i}", 10, WHEN, frozenset(), b"s")
                                 for i in range(3)])
    await store.close()
    with sqlite3.connect(path) as db:  # as written before mailboxes kept the count
        db.execute("ALTER TABLE mailboxes DROP COLUMN exists_count")
    store = SqliteCellStore(path)
    try:
        assert (await store.get_mailbox("acc1", "INBOX")).messages == 3
        await store.expunge(box.id, [2])
        assert (await store.get_mailbox_by_id(box.id)).messages == 2
    finally:
        await store.close()
