"""The cell store's SQLite schema (and its upgrade of older files) and what its
operations share: column lists, row-to-record conversions, and the statements several
operations run (mailbox lookups, UID ranges, appending, bumping HIGHESTMODSEQ).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
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
from letterlock.storage.sqlite_db import ts_parse, ts_text

CELL_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    address TEXT UNIQUE NOT NULL,
    created TEXT NOT NULL,
    public_key BLOB NOT NULL,
    key_id BLOB NOT NULL,
    wrapped_by_password BLOB NOT NULL,
    wrapped_by_recovery BLOB NOT NULL,
    custody TEXT NOT NULL,
    openpgp_cert BLOB NOT NULL DEFAULT x''
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    highestmodseq INTEGER NOT NULL,
    special_use TEXT,
    subscribed INTEGER NOT NULL,
    exists_count INTEGER NOT NULL DEFAULT 0,
    recent_mark INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);
CREATE TABLE IF NOT EXISTS messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid INTEGER NOT NULL,
    blob_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    internaldate TEXT NOT NULL,
    flags TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    summary BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_blob ON messages (blob_id);
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
-- Covers what opening a mailbox reads (UIDs, flags, sizes, modseqs), so that is read
-- without the rows' sealed summaries (kilobytes each, stored inline).
CREATE INDEX IF NOT EXISTS messages_light ON messages (mailbox_id, uid, flags, modseq, size);
CREATE TABLE IF NOT EXISTS vanished (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vanished_modseq ON vanished (mailbox_id, modseq);
CREATE TABLE IF NOT EXISTS cell_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;
-- Cells made before the subscription list kept a flag per mailbox: copy those once.
-- (mailboxes.subscribed is still written, as a mirror of the list, for older readers.)
INSERT OR IGNORE INTO subscriptions (account_id, name)
    SELECT account_id, name FROM mailboxes WHERE subscribed <> 0
    AND NOT EXISTS (SELECT 1 FROM cell_meta WHERE key = 'subscriptions_v1');
INSERT OR IGNORE INTO cell_meta VALUES ('subscriptions_v1', 1);
""" + "".join(f"""
CREATE TABLE IF NOT EXISTS {table} (
    mailbox_id INTEGER NOT NULL,
    first_uid INTEGER NOT NULL,
    last_uid INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, first_uid)
) WITHOUT ROWID;""" for table in PACK_TABLES) + """
CREATE TABLE IF NOT EXISTS text_postings (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    key BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);"""

_ACCOUNT_COLS = ("id, address, created, public_key, key_id, wrapped_by_password, "
                 "wrapped_by_recovery, custody, openpgp_cert")
_MAILBOX_SELECT = ("SELECT id, account_id, name, uidvalidity, uidnext, highestmodseq, "
                   "special_use, EXISTS (SELECT 1 FROM subscriptions s "
                   "WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name), "
                   "exists_count FROM mailboxes")
_MESSAGE_COLS = "mailbox_id, uid, blob_id, size, internaldate, flags, modseq, summary"
_LIGHT_COLS = "mailbox_id, uid, blob_id, size, internaldate, flags, modseq, x''"
"""The message columns without the sealed summary (an empty blob in its place)."""


def _cols(with_summary: bool) -> str:
    return _MESSAGE_COLS if with_summary else _LIGHT_COLS


def _account(row: Sequence[Any]) -> AccountRecord:
    return AccountRecord(row[0], row[1], ts_parse(row[2]), bytes(row[3]), bytes(row[4]),
                         bytes(row[5]), bytes(row[6]), row[7], bytes(row[8]))


def _mailbox(row: Sequence[Any]) -> MailboxRecord:
    return MailboxRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                         bool(row[7]), row[8])


def _flags_text(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags))


def _message(row: Sequence[Any]) -> MessageRecord:
    flags = frozenset(row[5].split()) if row[5] else frozenset()
    return MessageRecord(row[0], row[1], row[2], row[3], ts_parse(row[4]), flags, row[6],
                         bytes(row[7]))


def _next_validity(c: sqlite3.Connection) -> int:
    row = c.execute("SELECT value FROM cell_meta WHERE key='last_uidvalidity'").fetchone()
    value = max((row[0] if row else 0) + 1, int(time.time()))
    c.execute("INSERT INTO cell_meta VALUES ('last_uidvalidity', ?) "
              "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (value,))
    return value


def _get_box(c: sqlite3.Connection, account_id: str, name: str) -> MailboxRecord:
    row = c.execute(_MAILBOX_SELECT + " WHERE account_id=? AND name=?",
                    (account_id, name)).fetchone()
    if row is None:
        raise UnknownMailbox(name)
    return _mailbox(row)


def _get_box_id(c: sqlite3.Connection, mailbox_id: int) -> MailboxRecord:
    row = c.execute(_MAILBOX_SELECT + " WHERE id=?", (mailbox_id,)).fetchone()
    if row is None:
        raise UnknownMailbox(str(mailbox_id))
    return _mailbox(row)


def _box_modseq(c: sqlite3.Connection, mailbox_id: int) -> int:
    """The mailbox's HIGHESTMODSEQ; raises UnknownMailbox (a cheap existence check)."""
    row = c.execute("SELECT highestmodseq FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()
    if row is None:
        raise UnknownMailbox(str(mailbox_id))
    return int(row[0])


INLINE_ROWS = 256
"""Reads of at most this many messages run on the event loop (SqliteDb.read)."""


def _more_than(c: sqlite3.Connection, table: str, mailbox_id: int, modseq: int) -> bool:
    """Whether more than INLINE_ROWS rows of ``table`` changed after ``modseq`` (an
    index range scan that stops there)."""
    (count,) = c.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE mailbox_id=? "
                         "AND modseq>? LIMIT ?)", (mailbox_id, modseq,
                                                   INLINE_ROWS + 1)).fetchone()
    return int(count) > INLINE_ROWS


def _orphans(c: sqlite3.Connection, blob_ids: Sequence[str]) -> list[str]:
    return sorted({b for b in blob_ids
                   if c.execute("SELECT 1 FROM messages WHERE blob_id=? LIMIT 1",
                                (b,)).fetchone() is None})


def _runs(wanted: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Ascending distinct numbers split into runs of 8 or more consecutive ones
    (first, last) and the rest."""
    runs: list[tuple[int, int]] = []
    single: list[int] = []
    i = 0
    while i < len(wanted):
        j = i
        while j + 1 < len(wanted) and wanted[j + 1] == wanted[j] + 1:
            j += 1
        if j - i >= 7:
            runs.append((wanted[i], wanted[j]))
        else:
            single += wanted[i : j + 1]
        i = j + 1
    return runs, single


def _select_uids(c: sqlite3.Connection, mailbox_id: int,
                 uids: Sequence[int], with_summary: bool = True) -> list[MessageRecord]:
    # Consecutive UIDs (a FETCH of 1:*, a window of a mailbox) are read as ranges: one
    # index range scan instead of an IN list of hundreds of parameters.
    runs, single = _runs(sorted(set(uids)))
    rows: list[Any] = []
    cols = _cols(with_summary)
    for first, last in runs:
        rows += c.execute(f"SELECT {cols} FROM messages WHERE mailbox_id=? "
                          "AND uid BETWEEN ? AND ? ORDER BY uid",
                          (mailbox_id, first, last)).fetchall()
    for i in range(0, len(single), 500):
        part = single[i : i + 500]
        marks = ",".join("?" * len(part))
        rows += c.execute(f"SELECT {cols} FROM messages WHERE mailbox_id=? "
                          f"AND uid IN ({marks}) ORDER BY uid", (mailbox_id, *part)).fetchall()
    if runs and single:
        rows.sort(key=lambda r: r[1])
    return [_message(r) for r in rows]


def _bump(c: sqlite3.Connection, mailbox_id: int) -> int:
    row = c.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id=? "
                    "RETURNING highestmodseq", (mailbox_id,)).fetchone()
    return int(row[0])


def _append(c: sqlite3.Connection, messages: Sequence[NewMessage]) -> list[Appended]:
    # One UPDATE per mailbox reserves the batch's UIDs and modseqs (in batch order),
    # and one executemany inserts every row: a batch costs a few statements, not two
    # per message (each statement is a trip out of and back into the interpreter).
    counts: dict[int, int] = {}
    for msg in messages:
        counts[msg.mailbox_id] = counts.get(msg.mailbox_id, 0) + 1
    next_ids: dict[int, list[int]] = {}
    for mailbox_id, n in counts.items():
        row = c.execute(
            "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + ?, "
            "exists_count = exists_count + ? "
            "WHERE id=? RETURNING uidnext - ?, highestmodseq - ? + 1, uidvalidity",
            (n, n, n, mailbox_id, n, n)).fetchone()
        if row is None:
            raise UnknownMailbox(str(mailbox_id))
        next_ids[mailbox_id] = [row[0], row[1], row[2]]
    out = []
    rows = []
    for msg in messages:
        slot = next_ids[msg.mailbox_id]
        uid, modseq, validity = slot
        slot[0] += 1
        slot[1] += 1
        rows.append((msg.mailbox_id, uid, msg.blob_id, msg.size, ts_text(msg.internaldate),
                     _flags_text(msg.flags), modseq, msg.summary))
        out.append(Appended(msg.mailbox_id, validity, uid, modseq))
    c.executemany(f"INSERT INTO messages ({_MESSAGE_COLS}) VALUES (?,?,?,?,?,?,?,?)", rows)
    postings = [(a.mailbox_id, a.uid, m.posting_key, m.posting)
                for m, a in zip(messages, out, strict=True) if m.posting]
    if postings:
        c.executemany("INSERT OR REPLACE INTO text_postings VALUES (?,?,?,?)", postings)
    return out


def _upgrade_cell(path: Path) -> None:
    """Columns added after the first release (CREATE TABLE IF NOT EXISTS does not add
    them to an existing table)."""
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(vanished)")}
        if "flags" not in columns:
            conn.execute("ALTER TABLE vanished ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(mailboxes)")}
        if "exists_count" not in columns:
            # The message count is kept in the mailbox row (it was counted on every read).
            conn.execute("ALTER TABLE mailboxes ADD COLUMN exists_count INTEGER NOT NULL "
                         "DEFAULT 0")
            conn.execute("UPDATE mailboxes SET exists_count = (SELECT count(*) FROM "
                         "messages m WHERE m.mailbox_id = mailboxes.id)")
        if "recent_mark" not in columns:
            conn.execute("ALTER TABLE mailboxes ADD COLUMN recent_mark INTEGER NOT NULL "
                         "DEFAULT 0")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(accounts)")}
        if "openpgp_cert" not in columns:
            conn.execute("ALTER TABLE accounts ADD COLUMN openpgp_cert BLOB NOT NULL "
                         "DEFAULT x''")
    conn.close()
