"""The cell store's PostgreSQL schema and what its operations share: column lists,
row-to-record conversions, and the statements several operations run (locking a
mailbox, appending messages, finding orphaned blobs, notifying other processes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from letterlock.errors import UnknownMailbox
from letterlock.storage.models import (
    AccountRecord,
    Appended,
    MailboxRecord,
    MessageRecord,
    NewMessage,
)
from letterlock.storage.pack_tables import PACK_TABLES
from letterlock.storage.postgres_db import Conn
from letterlock.storage.postgres_db import all_rows as _all
from letterlock.storage.postgres_db import one as _one

CELL_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    address TEXT UNIQUE NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    public_key BYTEA NOT NULL,
    key_id BYTEA NOT NULL,
    wrapped_by_password BYTEA NOT NULL,
    wrapped_by_recovery BYTEA NOT NULL,
    custody TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uidnext BIGINT NOT NULL,
    highestmodseq BIGINT NOT NULL,
    special_use TEXT,
    subscribed BOOLEAN NOT NULL,
    exists_count BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT mailboxes_account_name UNIQUE (account_id, name)
        DEFERRABLE INITIALLY IMMEDIATE
);
CREATE TABLE IF NOT EXISTS messages (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    uid BIGINT NOT NULL,
    blob_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    internaldate TIMESTAMPTZ NOT NULL,
    internaldate_offset INTEGER NOT NULL,
    flags TEXT[] NOT NULL,
    modseq BIGINT NOT NULL,
    summary BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX IF NOT EXISTS messages_blob ON messages (blob_id);
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
CREATE TABLE IF NOT EXISTS vanished (
    mailbox_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
ALTER TABLE vanished ADD COLUMN IF NOT EXISTS flags TEXT[] NOT NULL DEFAULT '{}';
-- Added later: altered only when missing (ALTER TABLE locks the table even when the
-- column exists, and that lock can deadlock with a server already running).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_name = 'mailboxes' AND column_name = 'recent_mark') THEN
        ALTER TABLE mailboxes ADD COLUMN recent_mark BIGINT NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'vanished_modseq') THEN
        CREATE INDEX vanished_modseq ON vanished (mailbox_id, modseq);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'messages_light') THEN
        CREATE INDEX messages_light ON messages (mailbox_id, uid) INCLUDE (flags, modseq, size);
    END IF;
END $$;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS openpgp_cert BYTEA NOT NULL DEFAULT '\\x';
CREATE TABLE IF NOT EXISTS cell_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
-- Cells made before the subscription list kept a flag per mailbox: copy those once.
INSERT INTO subscriptions (account_id, name)
    SELECT account_id, name FROM mailboxes WHERE subscribed
    AND NOT EXISTS (SELECT 1 FROM cell_meta WHERE key = 'subscriptions_v1')
    ON CONFLICT DO NOTHING;
INSERT INTO cell_meta VALUES ('subscriptions_v1', 1) ON CONFLICT DO NOTHING;
""" + "".join(f"""
CREATE TABLE IF NOT EXISTS {table} (
    mailbox_id BIGINT NOT NULL,
    first_uid BIGINT NOT NULL,
    last_uid BIGINT NOT NULL,
    count BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, first_uid)
);""" for table in PACK_TABLES) + """
CREATE TABLE IF NOT EXISTS text_postings (
    mailbox_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    key BYTEA NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);"""

_ACCOUNT_COLS = ("id, address, created, public_key, key_id, wrapped_by_password, "
                 "wrapped_by_recovery, custody, openpgp_cert")
_MAILBOX_COLS = ("id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, "
                 "EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = "
                 "mailboxes.account_id AND s.name = mailboxes.name), exists_count")
"""(The ``subscribed`` column is a mirror kept for older readers; the subscription
list is what counts.)"""
_MESSAGE_COLS = ("mailbox_id, uid, blob_id, size, internaldate, internaldate_offset, flags, "
                 "modseq, summary")
_LIGHT_COLS = ("mailbox_id, uid, blob_id, size, internaldate, internaldate_offset, flags, "
               "modseq, ''::bytea")
"""The message columns without the sealed summary (empty in its place)."""


def _cols(with_summary: bool) -> str:
    return _MESSAGE_COLS if with_summary else _LIGHT_COLS
_INSERT_MESSAGE = (f"INSERT INTO messages ({_MESSAGE_COLS}) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")


def _offset_of(dt: datetime) -> int:
    offset = dt.utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _in_zone(stamp: datetime, offset: int) -> datetime:
    return stamp.astimezone(UTC if offset == 0 else timezone(timedelta(seconds=offset)))


def _account(row: Sequence[Any]) -> AccountRecord:
    return AccountRecord(row[0], row[1], row[2].astimezone(UTC), bytes(row[3]), bytes(row[4]),
                         bytes(row[5]), bytes(row[6]), row[7], bytes(row[8]))


def _mailbox(row: Sequence[Any]) -> MailboxRecord:
    return MailboxRecord(int(row[0]), row[1], row[2], int(row[3]), int(row[4]), int(row[5]),
                         row[6], bool(row[7]), int(row[8]))


def _message(row: Sequence[Any]) -> MessageRecord:
    return MessageRecord(int(row[0]), int(row[1]), row[2], int(row[3]),
                         _in_zone(row[4], row[5]), frozenset(row[6]), int(row[7]),
                         bytes(row[8]))


def _message_params(mailbox_id: int, uid: int, blob_id: str, size: int, internaldate: datetime,
                    flags: frozenset[str], modseq: int, summary: bytes) -> tuple[Any, ...]:
    return (mailbox_id, uid, blob_id, size, internaldate, _offset_of(internaldate),
            sorted(flags), modseq, summary)


async def _next_validities(c: Conn, count: int) -> list[int]:
    """``count`` UIDVALIDITY values never handed out before in this cell (ascending)."""
    row = await _one(
        c, "INSERT INTO cell_meta VALUES ('last_uidvalidity', %(now)s + %(n)s - 1) "
           "ON CONFLICT (key) DO UPDATE SET value = "
           "GREATEST(cell_meta.value + %(n)s, %(now)s + %(n)s - 1) RETURNING value",
        {"now": int(time.time()), "n": count})
    assert row is not None
    last = int(row[0])
    return list(range(last - count + 1, last + 1))


async def _lock_box(c: Conn, mailbox_id: int) -> MailboxRecord:
    row = await _one(c, f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id=%s FOR UPDATE",
                     (mailbox_id,))
    if row is None:
        raise UnknownMailbox(str(mailbox_id))
    return _mailbox(row)


async def _get_box(c: Conn, account_id: str, name: str, *, lock: bool = False) -> MailboxRecord:
    row = await _one(c, f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id=%s AND name=%s"
                        + (" FOR UPDATE" if lock else ""), (account_id, name))
    if row is None:
        raise UnknownMailbox(name)
    return _mailbox(row)


async def _get_box_id(c: Conn, mailbox_id: int) -> MailboxRecord:
    row = await _one(c, f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id=%s", (mailbox_id,))
    if row is None:
        raise UnknownMailbox(str(mailbox_id))
    return _mailbox(row)


async def _select_uids(c: Conn, mailbox_id: int, uids: Sequence[int],
                       lock: str = "", with_summary: bool = True) -> list[MessageRecord]:
    rows = await _all(c, f"SELECT {_cols(with_summary)} FROM messages WHERE mailbox_id=%s "
                         f"AND uid = ANY(%s) ORDER BY uid {lock}",
                      (mailbox_id, sorted(set(uids))))
    return [_message(r) for r in rows]


async def _lock_blobs(c: Conn, blob_ids: Sequence[str]) -> None:
    """Serialise transactions that may drop the last reference to these blobs."""
    wanted = sorted(set(blob_ids))
    if wanted:
        await c.execute("SELECT pg_advisory_xact_lock(hashtextextended(b, 0)) "
                        "FROM (SELECT b FROM unnest(%s::text[]) AS b ORDER BY b) AS s",
                        (wanted,))


async def _orphans(c: Conn, blob_ids: Sequence[str]) -> list[str]:
    rows = await _all(c, "SELECT b FROM unnest(%s::text[]) AS b WHERE NOT EXISTS "
                         "(SELECT 1 FROM messages m WHERE m.blob_id = b)",
                      (sorted(set(blob_ids)),))
    return sorted(r[0] for r in rows)


async def _append(c: Conn, messages: Sequence[NewMessage], channel: str) -> list[Appended]:
    by_box: dict[int, list[int]] = {}
    for index, msg in enumerate(messages):
        by_box.setdefault(msg.mailbox_id, []).append(index)
    results: list[Appended | None] = [None] * len(messages)
    params: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    for box_id in sorted(by_box):  # one lock order for every writer
        indexes = by_box[box_id]
        n = len(indexes)
        row = await _one(
            c, "UPDATE mailboxes SET uidnext = uidnext + %(n)s, "
               "highestmodseq = highestmodseq + %(n)s, exists_count = exists_count + %(n)s "
               "WHERE id = %(id)s RETURNING uidnext - %(n)s, highestmodseq - %(n)s, uidvalidity",
            {"n": n, "id": box_id})
        if row is None:
            raise UnknownMailbox(str(box_id))
        first_uid, last_modseq, validity = int(row[0]), int(row[1]), int(row[2])
        for offset, index in enumerate(indexes):
            msg = messages[index]
            uid, modseq = first_uid + offset, last_modseq + offset + 1
            params.append(_message_params(box_id, uid, msg.blob_id, msg.size,
                                          msg.internaldate, msg.flags, modseq, msg.summary))
            results[index] = Appended(box_id, validity, uid, modseq)
            if msg.posting:
                postings.append((box_id, uid, msg.posting_key, msg.posting))
    async with c.cursor() as cur:
        await cur.executemany(_INSERT_MESSAGE, params)
        if postings:
            await cur.executemany(
                "INSERT INTO text_postings VALUES (%s, %s, %s, %s) ON CONFLICT "
                "(mailbox_id, uid) DO UPDATE SET key = excluded.key, data = excluded.data",
                postings)
    await _notify(c, channel, by_box)
    return [r for r in results if r is not None]


async def _notify(c: Conn, channel: str, mailbox_ids: Iterable[int]) -> None:
    for box_id in sorted(mailbox_ids):
        await c.execute("SELECT pg_notify(%s, %s)", (channel, str(box_id)))
