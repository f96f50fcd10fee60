"""PostgreSQL implementations of the control store and of a cell's metadata store, for
scale-out: one database per region, shared by any number of stateless front-end
processes.

Concurrency between processes rests on row locks, taken in one order everywhere so
that transactions queue instead of deadlocking:

1. the destination or target mailbox row (``FOR UPDATE``, or the ``UPDATE ...
   RETURNING`` that allocates UIDs and modseqs), several in ascending id;
2. message rows (``FOR UPDATE`` to change or delete, ``FOR SHARE`` to copy);
3. per-blob advisory locks (ascending blob id) before deciding that a blob is orphaned,
   so two transactions deleting the last two references to one blob cannot both
   miss that it became unreferenced.

A copy holds its source rows ``FOR SHARE`` until it commits, so an expunge of the
source waits and then sees the new reference: a blob still in use is never reported
orphaned. Deadlocks and serialization failures, should one happen anyway, are retried.

Every transaction that changes a mailbox sends ``NOTIFY <channel>, '<mailbox id>'``;
PostgreSQL delivers it on commit to every process listening (:meth:`watch_changes`),
which is how IMAP IDLE learns of changes made by another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from letterlock.errors import (
    AlreadyExists,
    StorageError,
    UnknownAccount,
    UnknownMailbox,
)
from letterlock.storage.models import (
    AccountRecord,
    Appended,
    Changes,
    DigestPack,
    Expunged,
    FlagChange,
    MailboxIndex,
    MailboxRecord,
    MessageRecord,
    NewMessage,
    TextPosting,
    apply_flag_mode,
)
from letterlock.storage.pack_tables import PACK_TABLES, PackTables
from letterlock.storage.postgres_cell_rows import (
    _ACCOUNT_COLS,
    _MAILBOX_COLS,
    CELL_SCHEMA,
    _account,
    _append,
    _cols,
    _get_box,
    _get_box_id,
    _lock_blobs,
    _lock_box,
    _mailbox,
    _message,
    _next_validities,
    _notify,
    _orphans,
    _select_uids,
)
from letterlock.storage.postgres_control import PostgresControlStore
from letterlock.storage.postgres_db import DEFAULT_CHANNEL, Conn, PostgresDb
from letterlock.storage.postgres_db import all_rows as _all
from letterlock.storage.postgres_db import one as _one

__all__ = ["DEFAULT_CHANNEL", "ChangeFeed", "Conn", "PostgresCellStore", "PostgresControlStore",
           "PostgresDb"]


# --------------------------------------------------------------------------- cell


class ChangeFeed:
    """Mailbox ids changed by any process, as PostgreSQL delivers the notifications.

    Listening is in effect from the moment the feed is returned. An id may be repeated
    and several changes may arrive as one; a consumer re-reads the mailbox state. If
    the connection is lost, iteration raises StorageError (changes may have been missed).
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any],
                 on_close: Callable[[ChangeFeed], None]) -> None:
        self._conn = conn
        self._on_close = on_close
        self._gen: AsyncIterator[psycopg.Notify] | None = None

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> int:
        if self._gen is None:
            self._gen = self._conn.notifies()
        while True:
            try:
                note = await anext(self._gen)
            except psycopg.Error as exc:
                raise StorageError(f"change notifications lost: {exc}") from exc
            try:
                return int(note.payload)
            except ValueError:
                continue

    async def aclose(self) -> None:
        self._on_close(self)
        await self._conn.close()


class PostgresCellStore(PackTables):
    """A region's accounts, mailboxes and messages in that region's own database."""

    def __init__(self, url: str, *, max_connections: int = 10, create_database: bool = True,
                 channel: str = DEFAULT_CHANNEL) -> None:
        self.db = PostgresDb(url, CELL_SCHEMA, max_size=max_connections,
                             create_database=create_database)
        self.channel = channel
        self._feeds: set[ChangeFeed] = set()

    async def open(self) -> None:
        """Connect and create the schema now (otherwise done by the first operation)."""
        await self.db.open()

    async def watch_changes(self) -> ChangeFeed:
        """Start listening for changes committed by any process to this cell; iterate
        the returned feed for mailbox ids and ``aclose`` it when done."""
        await self.db.open()
        try:
            conn = await psycopg.AsyncConnection.connect(self.db.url, autocommit=True)
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            raise StorageError(f"cannot listen for changes: {exc}") from exc
        feed = ChangeFeed(conn, self._feeds.discard)
        self._feeds.add(feed)
        return feed

    async def forward_changes(self, notify: Callable[[int], None], *,
                              retry_s: float = 1.0) -> None:
        """Call ``notify(mailbox_id)`` for every change any process commits to this
        cell, until cancelled (e.g. ``ChangeHub.notify`` as a background task). A lost
        connection is re-established after ``retry_s``; changes committed while it was
        down are not replayed (IMAP clients see them at their next command)."""
        while True:
            try:
                feed = await self.watch_changes()
            except StorageError:
                await asyncio.sleep(retry_s)
                continue
            try:
                async for mailbox_id in feed:
                    notify(mailbox_id)
            except StorageError:
                await asyncio.sleep(retry_s)
            finally:
                await feed.aclose()

    # -- accounts --------------------------------------------------------------
    async def create_account(self, account: AccountRecord) -> None:
        async def op(c: Conn) -> None:
            await c.execute(f"INSERT INTO accounts ({_ACCOUNT_COLS}) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            (account.id, account.address, account.created, account.public_key,
                             account.key_id, account.wrapped_by_password,
                             account.wrapped_by_recovery, account.custody,
                             account.openpgp_cert))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{account.address} exists") from None

    async def get_account(self, address: str) -> AccountRecord | None:
        row = await self.db.query(lambda c: _one(
            c, f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE address=%s", (address,)))
        return None if row is None else _account(row)

    async def list_accounts(self) -> list[AccountRecord]:
        rows = await self.db.query(lambda c: _all(
            c, f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY address"))
        return [_account(r) for r in rows]

    async def update_account_keys(self, address: str, wrapped_by_password: bytes,
                                  wrapped_by_recovery: bytes) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("UPDATE accounts SET wrapped_by_password=%s, "
                                  "wrapped_by_recovery=%s WHERE address=%s",
                                  (wrapped_by_password, wrapped_by_recovery, address))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def set_custody(self, address: str, custody: str, openpgp_cert: bytes) -> None:
        async def op(c: Conn) -> None:
            cur = await c.execute("UPDATE accounts SET custody=%s, openpgp_cert=%s "
                                  "WHERE address=%s", (custody, openpgp_cert, address))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def delete_account(self, address: str) -> list[str]:
        async def op(c: Conn) -> list[str]:
            row = await _one(c, "SELECT id FROM accounts WHERE address=%s FOR UPDATE",
                             (address,))
            if row is None:
                raise UnknownAccount(address)
            boxes = [int(r[0]) for r in await _all(
                c, "SELECT id FROM mailboxes WHERE account_id=%s ORDER BY id FOR UPDATE",
                (row[0],))]
            blobs = [r[0] for r in await _all(
                c, "SELECT blob_id FROM messages WHERE mailbox_id = ANY(%s) FOR UPDATE",
                (boxes,))]
            await _lock_blobs(c, blobs)
            await c.execute("DELETE FROM messages WHERE mailbox_id = ANY(%s)", (boxes,))
            await c.execute("DELETE FROM vanished WHERE mailbox_id = ANY(%s)", (boxes,))
            await c.execute("DELETE FROM digest_packs WHERE mailbox_id = ANY(%s)", (boxes,))
            await c.execute("DELETE FROM text_packs WHERE mailbox_id = ANY(%s)", (boxes,))
            await c.execute("DELETE FROM text_postings WHERE mailbox_id = ANY(%s)", (boxes,))
            await c.execute("DELETE FROM mailboxes WHERE account_id=%s", (row[0],))
            await c.execute("DELETE FROM subscriptions WHERE account_id=%s", (row[0],))
            await c.execute("DELETE FROM accounts WHERE id=%s", (row[0],))
            await _notify(c, self.channel, boxes)
            return await _orphans(c, blobs)

        return await self.db.write(op)

    # -- mailboxes -------------------------------------------------------------
    async def create_mailbox(self, account_id: str, name: str, special_use: str | None,
                             subscribed: bool) -> MailboxRecord:
        async def op(c: Conn) -> MailboxRecord:
            [validity] = await _next_validities(c, 1)
            if subscribed:
                await c.execute("INSERT INTO subscriptions VALUES (%s, %s) "
                                "ON CONFLICT DO NOTHING", (account_id, name))
            try:
                row = await _one(
                    c, "INSERT INTO mailboxes (account_id, name, uidvalidity, uidnext, "
                       "highestmodseq, special_use, subscribed) "
                       "VALUES (%s, %s, %s, 1, 1, %s, EXISTS (SELECT 1 FROM subscriptions "
                       f"WHERE account_id=%s AND name=%s)) RETURNING {_MAILBOX_COLS}",
                    (account_id, name, validity, special_use, account_id, name))
            except psycopg.errors.ForeignKeyViolation:
                raise UnknownAccount(account_id) from None
            assert row is not None
            return _mailbox(row)

        try:
            return await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"mailbox {name} exists") from None

    async def list_mailboxes(self, account_id: str) -> list[MailboxRecord]:
        rows = await self.db.query(lambda c: _all(
            c, f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id=%s ORDER BY name",
            (account_id,)))
        return [_mailbox(r) for r in rows]

    async def get_mailbox(self, account_id: str, name: str) -> MailboxRecord:
        return await self.db.query(lambda c: _get_box(c, account_id, name))

    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord:
        return await self.db.query(lambda c: _get_box_id(c, mailbox_id))

    async def rename_mailbox(self, account_id: str, old: str, new: str) -> None:
        async def op(c: Conn) -> None:
            moving = await _all(
                c, "SELECT id, name FROM mailboxes WHERE account_id=%s AND "
                   "(name=%s OR left(name, %s) = %s) ORDER BY id FOR UPDATE",
                (account_id, old, len(old) + 1, old + "/"))
            if not any(name == old for _id, name in moving):
                raise UnknownMailbox(old)
            validities = await _next_validities(c, len(moving))
            # One statement: the unique constraint is checked at its end, so names
            # may move within the subtree; a clash with any other mailbox is refused.
            await c.execute(
                "UPDATE mailboxes AS b SET name = v.name, uidvalidity = v.validity "
                "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS v(id, name, validity) "
                "WHERE b.id = v.id",
                ([r[0] for r in moving], [new + r[1][len(old):] for r in moving], validities))
            # A renamed mailbox stays subscribed under its new name; the old names
            # stay on the list too (RFC 9051 6.3.9).
            await c.execute(
                "INSERT INTO subscriptions (account_id, name) "
                "SELECT %s, v.new FROM unnest(%s::text[], %s::text[]) AS v(old, new) "
                "WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id=%s "
                "AND s.name = v.old) ON CONFLICT DO NOTHING",
                (account_id, [r[1] for r in moving], [new + r[1][len(old):] for r in moving],
                 account_id))
            await c.execute(
                "UPDATE mailboxes AS b SET subscribed = EXISTS (SELECT 1 FROM subscriptions s "
                "WHERE s.account_id = b.account_id AND s.name = b.name) WHERE b.id = ANY(%s)",
                ([r[0] for r in moving],))
            await _notify(c, self.channel, [int(r[0]) for r in moving])

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"a mailbox under {new} exists") from None

    async def delete_mailbox(self, account_id: str, name: str) -> list[str]:
        async def op(c: Conn) -> list[str]:
            box = await _get_box(c, account_id, name, lock=True)
            blobs = [r[0] for r in await _all(
                c, "SELECT blob_id FROM messages WHERE mailbox_id=%s FOR UPDATE", (box.id,))]
            await _lock_blobs(c, blobs)
            await c.execute("DELETE FROM messages WHERE mailbox_id=%s", (box.id,))
            await c.execute("DELETE FROM vanished WHERE mailbox_id=%s", (box.id,))
            await c.execute("DELETE FROM digest_packs WHERE mailbox_id=%s", (box.id,))
            await c.execute("DELETE FROM text_packs WHERE mailbox_id=%s", (box.id,))
            await c.execute("DELETE FROM text_postings WHERE mailbox_id=%s", (box.id,))
            await c.execute("DELETE FROM mailboxes WHERE id=%s", (box.id,))
            await _notify(c, self.channel, [box.id])
            return await _orphans(c, blobs)

        return await self.db.write(op)

    async def subscribe(self, account_id: str, name: str, on: bool) -> None:
        async def op(c: Conn) -> None:
            if on:
                await c.execute("INSERT INTO subscriptions VALUES (%s, %s) "
                                "ON CONFLICT DO NOTHING", (account_id, name))
            else:
                await c.execute("DELETE FROM subscriptions WHERE account_id=%s AND name=%s",
                                (account_id, name))
            await c.execute("UPDATE mailboxes SET subscribed=%s WHERE account_id=%s AND name=%s",
                            (on, account_id, name))

        await self.db.write(op)

    async def list_subscriptions(self, account_id: str) -> list[str]:
        rows = await self.db.query(lambda c: _all(
            c, "SELECT name FROM subscriptions WHERE account_id=%s ORDER BY name",
            (account_id,)))
        return [r[0] for r in rows]

    async def account_usage(self, account_id: str) -> tuple[int, int]:
        row = await self.db.query(lambda c: _one(
            c, "SELECT coalesce(sum(n), 0), coalesce(sum(size), 0) FROM (SELECT count(*) "
               "AS n, max(size) AS size FROM messages WHERE mailbox_id IN "
               "(SELECT id FROM mailboxes WHERE account_id=%s) GROUP BY blob_id) AS b",
            (account_id,)))
        assert row is not None
        return int(row[0]), int(row[1])

    # -- messages --------------------------------------------------------------
    async def append_messages(self, messages: Sequence[NewMessage]) -> list[Appended]:
        if not messages:
            return []
        return await self.db.write(lambda c: _append(c, messages, self.channel))

    async def list_messages(self, mailbox_id: int, *,
                            with_summary: bool = True) -> list[MessageRecord]:
        rows = await self.db.query(lambda c: _all(
            c, f"SELECT {_cols(with_summary)} FROM messages WHERE mailbox_id=%s ORDER BY uid",
            (mailbox_id,)))
        if not rows:
            await self.get_mailbox_by_id(mailbox_id)  # UnknownMailbox, or really empty
        return [_message(r) for r in rows]

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        async def op(c: Conn) -> int:
            row = await _one(c, "SELECT recent_mark FROM mailboxes WHERE id=%s FOR UPDATE",
                             (mailbox_id,))
            if row is None:
                raise UnknownMailbox(str(mailbox_id))
            if up_to > int(row[0]):
                await c.execute("UPDATE mailboxes SET recent_mark=%s WHERE id=%s",
                                (up_to, mailbox_id))
            return int(row[0])

        return await self.db.write(op, durable=False)

    async def recent_mark(self, mailbox_id: int) -> int:
        row = await self.db.query(lambda c: _one(
            c, "SELECT recent_mark FROM mailboxes WHERE id=%s", (mailbox_id,)))
        if row is None:
            raise UnknownMailbox(str(mailbox_id))
        return int(row[0])

    async def mailbox_index(self, mailbox_id: int) -> MailboxIndex:
        async def op(c: Conn) -> MailboxIndex:
            box = await _get_box_id(c, mailbox_id)
            runs = tuple((int(r[0]), int(r[1])) for r in await _all(
                c, "SELECT min(uid), max(uid) FROM (SELECT uid, uid - row_number() OVER "
                   "(ORDER BY uid) AS island FROM messages WHERE mailbox_id=%s) AS u "
                   "GROUP BY island ORDER BY 1", (mailbox_id,)))
            keywords = frozenset(str(r[0]) for r in await _all(
                c, "SELECT DISTINCT unnest(flags) FROM messages WHERE mailbox_id=%s",
                (mailbox_id,)) if not str(r[0]).startswith("\\"))
            row = await _one(
                c, "SELECT max(modseq), coalesce(sum(size), 0), "
                   "count(*) FILTER (WHERE '\\Deleted' = ANY(flags)), "
                   "count(*) FILTER (WHERE NOT '\\Seen' = ANY(flags)), "
                   "min(uid) FILTER (WHERE NOT '\\Seen' = ANY(flags)) "
                   "FROM messages WHERE mailbox_id=%s", (mailbox_id,))
            assert row is not None
            return MailboxIndex(runs, keywords, max(box.highestmodseq, int(row[0] or 0)),
                                int(row[3]), None if row[4] is None else int(row[4]),
                                int(row[2]), int(row[1]))

        return await self.db.read(op)

    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *,
                           with_summary: bool = True) -> list[MessageRecord]:
        found = await self.db.query(lambda c: _select_uids(c, mailbox_id, uids,
                                                           with_summary=with_summary))
        if not found:
            await self.get_mailbox_by_id(mailbox_id)  # UnknownMailbox, or none of those
        return found

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: frozenset[str],
                          unchanged_since: int | None = None) -> tuple[list[FlagChange],
                                                                       list[int]]:
        async def op(c: Conn) -> tuple[list[FlagChange], list[int]]:
            box = await _lock_box(c, mailbox_id)
            changes: list[FlagChange] = []
            refused: list[int] = []
            modseq = box.highestmodseq
            for msg in await _select_uids(c, mailbox_id, uids, "FOR UPDATE"):
                if unchanged_since is not None and msg.modseq > unchanged_since:
                    refused.append(msg.uid)
                    continue
                new = apply_flag_mode(msg.flags, mode, flags)
                if new == msg.flags:
                    continue
                modseq += 1
                changes.append(FlagChange(msg.uid, new, modseq))
            if changes:
                async with c.cursor() as cur:
                    await cur.executemany(
                        "UPDATE messages SET flags=%s, modseq=%s WHERE mailbox_id=%s AND uid=%s",
                        [(sorted(ch.flags), ch.modseq, mailbox_id, ch.uid) for ch in changes])
                await c.execute("UPDATE mailboxes SET highestmodseq=%s WHERE id=%s",
                                (modseq, mailbox_id))
                await _notify(c, self.channel, [mailbox_id])
            return changes, refused

        return await self.db.write(op, durable=False)

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[Expunged]:
        async def op(c: Conn) -> list[Expunged]:
            box = await _lock_box(c, mailbox_id)
            gone = await _select_uids(c, mailbox_id, uids, "FOR UPDATE")
            if not gone:
                return []
            await _lock_blobs(c, [m.blob_id for m in gone])
            gone_uids = [m.uid for m in gone]
            await c.execute("DELETE FROM messages WHERE mailbox_id=%s AND uid = ANY(%s)",
                            (mailbox_id, gone_uids))
            for table in PACK_TABLES:
                await c.execute(f"DELETE FROM {table} p USING unnest(%s::bigint[]) AS g(uid) "
                                "WHERE p.mailbox_id=%s AND g.uid BETWEEN p.first_uid "
                                "AND p.last_uid", (gone_uids, mailbox_id))
            await c.execute("DELETE FROM text_postings WHERE mailbox_id=%s AND uid = ANY(%s)",
                            (mailbox_id, gone_uids))
            first = box.highestmodseq + 1
            await c.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + %s, "
                            "exists_count = exists_count - %s WHERE id=%s",
                            (len(gone), len(gone), mailbox_id))
            async with c.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO vanished (mailbox_id, uid, modseq, flags) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (mailbox_id, uid) "
                    "DO UPDATE SET modseq = excluded.modseq, flags = excluded.flags",
                    [(mailbox_id, m.uid, first + i, sorted(m.flags))
                     for i, m in enumerate(gone)])
            orphans = set(await _orphans(c, [m.blob_id for m in gone]))
            # An orphaned blob is reported once, with the last message that held it.
            last_holder = {m.blob_id: m.uid for m in gone}
            await _notify(c, self.channel, [mailbox_id])
            return [Expunged(m.uid, first + i,
                             m.blob_id if m.blob_id in orphans and last_holder[m.blob_id] == m.uid
                             else None)
                    for i, m in enumerate(gone)]

        return await self.db.write(op)

    async def expunged_flags(self, mailbox_id: int,
                             uids: Sequence[int]) -> dict[int, FlagChange]:
        async def op(c: Conn) -> dict[int, FlagChange]:
            await _get_box_id(c, mailbox_id)
            rows = await _all(c, "SELECT uid, modseq, flags FROM vanished WHERE mailbox_id=%s "
                                 "AND uid = ANY(%s)", (mailbox_id, sorted(set(uids))))
            return {int(r[0]): FlagChange(int(r[0]), frozenset(r[2]), int(r[1]))
                    for r in rows}

        return await self.db.read(op)

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> list[tuple[int, Appended]]:
        async def op(c: Conn) -> list[tuple[int, Appended]]:
            await _lock_box(c, dst_mailbox_id)
            await _get_box_id(c, src_mailbox_id)
            # FOR SHARE: an expunge of these sources waits until the copies are
            # committed, so it sees that their blobs are still referenced.
            src = await _select_uids(c, src_mailbox_id, uids, "FOR SHARE")
            if not src:
                return []
            appended = await _append(c, [NewMessage(dst_mailbox_id, m.blob_id, m.size,
                                                    m.internaldate, m.flags, m.summary)
                                         for m in src], self.channel)
            return [(m.uid, a) for m, a in zip(src, appended, strict=True)]

        return await self.db.write(op)

    async def changes_since(self, mailbox_id: int, modseq: int, *,
                            with_summary: bool = True) -> Changes:
        async def op(c: Conn) -> Changes:
            box = await _get_box_id(c, mailbox_id)
            changed = tuple(_message(r) for r in await _all(
                c, f"SELECT {_cols(with_summary)} FROM messages WHERE mailbox_id=%s "
                   "AND modseq > %s "
                   "ORDER BY uid", (mailbox_id, modseq)))
            vanished = tuple(int(r[0]) for r in await _all(
                c, "SELECT uid FROM vanished WHERE mailbox_id=%s AND modseq > %s ORDER BY uid",
                (mailbox_id, modseq)))
            return Changes(box.highestmodseq, changed, vanished)

        return await self.db.read(op)

    async def _get_packs(self, table: str, mailbox_id: int, first_uid: int,
                         last_uid: int) -> list[DigestPack]:
        assert table in PACK_TABLES

        async def op(c: Conn) -> list[DigestPack]:
            await _get_box_id(c, mailbox_id)
            rows = await _all(c, f"SELECT first_uid, last_uid, count, data FROM {table} "
                                 "WHERE mailbox_id=%s AND first_uid <= %s AND last_uid >= %s "
                                 "ORDER BY first_uid", (mailbox_id, last_uid, first_uid))
            return [DigestPack(mailbox_id, int(r[0]), int(r[1]), int(r[2]), bytes(r[3]))
                    for r in rows]

        return await self.db.read(op)

    async def _put_pack(self, table: str, pack: DigestPack) -> bool:
        assert table in PACK_TABLES

        async def op(c: Conn) -> bool:
            # The mailbox row lock orders this against expunges (which take it too).
            await _lock_box(c, pack.mailbox_id)
            row = await _one(c, "SELECT count(*) FROM messages WHERE mailbox_id=%s "
                                "AND uid BETWEEN %s AND %s",
                             (pack.mailbox_id, pack.first_uid, pack.last_uid))
            old = await _one(c, f"SELECT last_uid FROM {table} WHERE mailbox_id=%s "
                                "AND first_uid=%s", (pack.mailbox_id, pack.first_uid))
            if row is None or int(row[0]) != pack.count or (
                    old is not None and int(old[0]) > pack.last_uid):
                return False
            await c.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s) "
                            "ON CONFLICT (mailbox_id, first_uid) DO UPDATE SET "
                            "last_uid = excluded.last_uid, count = excluded.count, "
                            "data = excluded.data",
                            (pack.mailbox_id, pack.first_uid, pack.last_uid, pack.count,
                             pack.data))
            return True

        return await self.db.write(op, durable=False)

    async def get_text_postings(self, mailbox_id: int, first_uid: int,
                                last_uid: int) -> list[TextPosting]:
        async def op(c: Conn) -> list[TextPosting]:
            await _get_box_id(c, mailbox_id)
            rows = await _all(c, "SELECT uid, key, data FROM text_postings WHERE "
                                 "mailbox_id=%s AND uid BETWEEN %s AND %s ORDER BY uid",
                              (mailbox_id, first_uid, last_uid))
            return [TextPosting(mailbox_id, int(r[0]), bytes(r[1]), bytes(r[2]))
                    for r in rows]

        return await self.db.read(op)

    async def delete_text_postings(self, mailbox_id: int, uids: Sequence[int]) -> None:
        async def op(c: Conn) -> None:
            await c.execute("DELETE FROM text_postings WHERE mailbox_id=%s AND uid = ANY(%s)",
                            (mailbox_id, list(uids)))

        await self.db.write(op, durable=False)

    async def close(self) -> None:
        for feed in list(self._feeds):
            await feed.aclose()
        await self.db.close()
