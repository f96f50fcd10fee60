"""The SQLite implementation of a cell's metadata store (the control store is in
sqlite_control.py), on
:class:`~letterlock.storage.sqlite_db.SqliteDb` (one writer thread, reader threads,
a cross-process writer lock)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from letterlock.errors import (
    AlreadyExists,
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
from letterlock.storage.sqlite_cell_rows import (
    _ACCOUNT_COLS,
    _MAILBOX_SELECT,
    CELL_SCHEMA,
    INLINE_ROWS,
    _account,
    _append,
    _box_modseq,
    _bump,
    _cols,
    _flags_text,
    _get_box,
    _get_box_id,
    _mailbox,
    _message,
    _more_than,
    _next_validity,
    _orphans,
    _select_uids,
    _upgrade_cell,
)
from letterlock.storage.sqlite_db import SqliteDb, ts_text

T = TypeVar("T")




# --------------------------------------------------------------------------- cell


class SqliteCellStore(PackTables):
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = SqliteDb(path, CELL_SCHEMA, fsync=fsync)
        _upgrade_cell(path)

    async def create_account(self, account: AccountRecord) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(f"INSERT INTO accounts ({_ACCOUNT_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                      (account.id, account.address, ts_text(account.created), account.public_key,
                       account.key_id, account.wrapped_by_password,
                       account.wrapped_by_recovery, account.custody, account.openpgp_cert))

        try:
            await self.db.write(op)
        except AlreadyExists:
            raise AlreadyExists(f"{account.address} exists") from None

    async def get_account(self, address: str) -> AccountRecord | None:
        row = await self.db.read(lambda c: c.execute(
            f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE address=?", (address,)).fetchone(),
            inline=True)
        return None if row is None else _account(row)

    async def list_accounts(self) -> list[AccountRecord]:
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY address").fetchall())
        return [_account(r) for r in rows]

    async def update_account_keys(self, address: str, wrapped_by_password: bytes,
                                  wrapped_by_recovery: bytes) -> None:
        def op(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE accounts SET wrapped_by_password=?, wrapped_by_recovery=? "
                            "WHERE address=?", (wrapped_by_password, wrapped_by_recovery,
                                                address))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def set_custody(self, address: str, custody: str, openpgp_cert: bytes) -> None:
        def op(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE accounts SET custody=?, openpgp_cert=? WHERE address=?",
                            (custody, openpgp_cert, address))
            if cur.rowcount == 0:
                raise UnknownAccount(address)

        await self.db.write(op)

    async def delete_account(self, address: str) -> list[str]:
        def op(c: sqlite3.Connection) -> list[str]:
            row = c.execute("SELECT id FROM accounts WHERE address=?", (address,)).fetchone()
            if row is None:
                raise UnknownAccount(address)
            boxes = [r[0] for r in c.execute("SELECT id FROM mailboxes WHERE account_id=?",
                                             (row[0],))]
            blobs: list[str] = []
            for box in boxes:
                blobs += [r[0] for r in c.execute(
                    "SELECT blob_id FROM messages WHERE mailbox_id=?", (box,))]
                c.execute("DELETE FROM messages WHERE mailbox_id=?", (box,))
                c.execute("DELETE FROM vanished WHERE mailbox_id=?", (box,))
                c.execute("DELETE FROM digest_packs WHERE mailbox_id=?", (box,))
                c.execute("DELETE FROM text_packs WHERE mailbox_id=?", (box,))
                c.execute("DELETE FROM text_postings WHERE mailbox_id=?", (box,))
            c.execute("DELETE FROM mailboxes WHERE account_id=?", (row[0],))
            c.execute("DELETE FROM subscriptions WHERE account_id=?", (row[0],))
            c.execute("DELETE FROM accounts WHERE id=?", (row[0],))
            return _orphans(c, blobs)

        return await self.db.write(op)

    async def create_mailbox(self, account_id: str, name: str, special_use: str | None,
                             subscribed: bool) -> MailboxRecord:
        def op(c: sqlite3.Connection) -> MailboxRecord:
            if c.execute("SELECT 1 FROM mailboxes WHERE account_id=? AND name=?",
                         (account_id, name)).fetchone():
                raise AlreadyExists(f"mailbox {name} exists")
            if subscribed:
                c.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)",
                          (account_id, name))
            listed = c.execute("SELECT 1 FROM subscriptions WHERE account_id=? AND name=?",
                               (account_id, name)).fetchone() is not None
            c.execute("INSERT INTO mailboxes (account_id, name, uidvalidity, uidnext, "
                      "highestmodseq, special_use, subscribed) VALUES (?,?,?,?,?,?,?)",
                      (account_id, name, _next_validity(c), 1, 1, special_use, int(listed)))
            return _get_box(c, account_id, name)

        return await self.db.write(op)

    async def list_mailboxes(self, account_id: str) -> list[MailboxRecord]:
        rows = await self.db.read(lambda c: c.execute(
            _MAILBOX_SELECT + " WHERE account_id=? ORDER BY name", (account_id,)).fetchall(),
            inline=True)
        return [_mailbox(r) for r in rows]

    async def get_mailbox(self, account_id: str, name: str) -> MailboxRecord:
        return await self.db.read(lambda c: _get_box(c, account_id, name), inline=True)

    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord:
        return await self.db.read(lambda c: _get_box_id(c, mailbox_id), inline=True)

    async def rename_mailbox(self, account_id: str, old: str, new: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            _get_box(c, account_id, old)
            moving = c.execute(
                "SELECT id, name FROM mailboxes WHERE account_id=? AND (name=? OR "
                "substr(name, 1, ?)=?)", (account_id, old, len(old) + 1, old + "/")).fetchall()
            ids = {r[0] for r in moving}
            for _box_id, name in moving:
                target = new + name[len(old):]
                clash = c.execute("SELECT id FROM mailboxes WHERE account_id=? AND name=?",
                                  (account_id, target)).fetchone()
                if clash and clash[0] not in ids:
                    raise AlreadyExists(f"mailbox {target} exists")
            # two passes so that swapping names inside the subtree cannot collide
            for box_id, _name in moving:
                c.execute("UPDATE mailboxes SET name=? WHERE id=?",
                          (f"\x00renaming\x00{box_id}", box_id))
            subscribed = {r[0] for r in c.execute(
                "SELECT name FROM subscriptions WHERE account_id=?", (account_id,))}
            for box_id, name in moving:
                target = new + name[len(old):]
                c.execute("UPDATE mailboxes SET name=?, uidvalidity=? WHERE id=?",
                          (target, _next_validity(c), box_id))
                if name in subscribed:
                    c.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)",
                              (account_id, target))

        await self.db.write(op)

    async def delete_mailbox(self, account_id: str, name: str) -> list[str]:
        def op(c: sqlite3.Connection) -> list[str]:
            box = _get_box(c, account_id, name)
            blobs = [r[0] for r in c.execute("SELECT blob_id FROM messages WHERE mailbox_id=?",
                                             (box.id,))]
            c.execute("DELETE FROM messages WHERE mailbox_id=?", (box.id,))
            c.execute("DELETE FROM vanished WHERE mailbox_id=?", (box.id,))
            c.execute("DELETE FROM digest_packs WHERE mailbox_id=?", (box.id,))
            c.execute("DELETE FROM text_packs WHERE mailbox_id=?", (box.id,))
            c.execute("DELETE FROM text_postings WHERE mailbox_id=?", (box.id,))
            c.execute("DELETE FROM mailboxes WHERE id=?", (box.id,))
            return _orphans(c, blobs)

        return await self.db.write(op)

    async def subscribe(self, account_id: str, name: str, on: bool) -> None:
        def op(c: sqlite3.Connection) -> None:
            if on:
                c.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)",
                          (account_id, name))
            else:
                c.execute("DELETE FROM subscriptions WHERE account_id=? AND name=?",
                          (account_id, name))
            c.execute("UPDATE mailboxes SET subscribed=? WHERE account_id=? AND name=?",
                      (int(on), account_id, name))

        await self.db.write(op)

    async def list_subscriptions(self, account_id: str) -> list[str]:
        rows = await self.db.read(lambda c: c.execute(
            "SELECT name FROM subscriptions WHERE account_id=? ORDER BY name",
            (account_id,)).fetchall())
        return [r[0] for r in rows]

    async def account_usage(self, account_id: str) -> tuple[int, int]:
        count, size = await self.db.read(lambda c: c.execute(
            "SELECT coalesce(sum(n), 0), total(size) FROM (SELECT count(*) AS n, "
            "max(size) AS size FROM messages WHERE mailbox_id IN "
            "(SELECT id FROM mailboxes WHERE account_id=?) GROUP BY blob_id)",
            (account_id,)).fetchone())
        return int(count), int(size)

    async def append_messages(self, messages: Sequence[NewMessage]) -> list[Appended]:
        if not messages:
            return []
        return await self.db.write(lambda c: _append(c, messages))

    async def list_messages(self, mailbox_id: int, *,
                            with_summary: bool = True) -> list[MessageRecord]:
        def op(c: sqlite3.Connection) -> list[MessageRecord]:
            _box_modseq(c, mailbox_id)
            return [_message(r) for r in c.execute(
                f"SELECT {_cols(with_summary)} FROM messages WHERE mailbox_id=? ORDER BY uid",
                (mailbox_id,))]

        return await self.db.read(op)

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT recent_mark FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if row is None:
                raise UnknownMailbox(str(mailbox_id))
            if up_to > row[0]:
                c.execute("UPDATE mailboxes SET recent_mark=? WHERE id=?", (up_to, mailbox_id))
            return int(row[0])

        return await self.db.write(op, durable=False)

    async def recent_mark(self, mailbox_id: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT recent_mark FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if row is None:
                raise UnknownMailbox(str(mailbox_id))
            return int(row[0])

        return await self.db.read(op, inline=True)

    async def mailbox_index(self, mailbox_id: int) -> MailboxIndex:
        def op(c: sqlite3.Connection) -> MailboxIndex:
            box = _get_box_id(c, mailbox_id)
            # Runs of consecutive UIDs ("gaps and islands"): a few rows, not one per
            # message.
            runs = tuple((r[0], r[1]) for r in c.execute(
                "SELECT min(uid), max(uid) FROM (SELECT uid, uid - row_number() OVER "
                "(ORDER BY uid) AS island FROM messages WHERE mailbox_id=?) "
                "GROUP BY island ORDER BY 1", (mailbox_id,)))
            keywords: set[str] = set()
            for (text,) in c.execute("SELECT DISTINCT flags FROM messages "
                                     "WHERE mailbox_id=?", (mailbox_id,)):
                keywords.update(f for f in text.split() if not f.startswith("\\"))
            modseq, size, deleted = c.execute(
                "SELECT max(modseq), total(size), "
                "total(instr(' ' || flags || ' ', ' \\Deleted ') > 0) "
                "FROM messages WHERE mailbox_id=?", (mailbox_id,)).fetchone()
            unseen, first = c.execute(
                "SELECT count(*), min(uid) FROM messages WHERE mailbox_id=? "
                "AND instr(' ' || flags || ' ', ' \\Seen ') = 0", (mailbox_id,)).fetchone()
            return MailboxIndex(runs, frozenset(keywords),
                                max(box.highestmodseq, modseq or 0), unseen, first,
                                int(deleted), int(size))

        return await self.db.read(op)

    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *,
                           with_summary: bool = True) -> list[MessageRecord]:
        def op(c: sqlite3.Connection) -> list[MessageRecord]:
            _box_modseq(c, mailbox_id)
            return _select_uids(c, mailbox_id, uids, with_summary)

        return await self.db.read(op, inline=len(uids) <= INLINE_ROWS)

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: frozenset[str],
                          unchanged_since: int | None = None) -> tuple[list[FlagChange],
                                                                       list[int]]:
        def op(c: sqlite3.Connection) -> tuple[list[FlagChange], list[int]]:
            _box_modseq(c, mailbox_id)
            changes: list[FlagChange] = []
            refused: list[int] = []
            for msg in _select_uids(c, mailbox_id, uids):
                if unchanged_since is not None and msg.modseq > unchanged_since:
                    refused.append(msg.uid)
                    continue
                new = apply_flag_mode(msg.flags, mode, flags)
                if new == msg.flags:
                    continue
                modseq = _bump(c, mailbox_id)
                c.execute("UPDATE messages SET flags=?, modseq=? WHERE mailbox_id=? AND uid=?",
                          (_flags_text(new), modseq, mailbox_id, msg.uid))
                changes.append(FlagChange(msg.uid, new, modseq))
            return changes, refused

        return await self.db.write(op, durable=False)

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[Expunged]:
        def op(c: sqlite3.Connection) -> list[Expunged]:
            _box_modseq(c, mailbox_id)
            out = []
            for msg in _select_uids(c, mailbox_id, uids):
                c.execute("DELETE FROM messages WHERE mailbox_id=? AND uid=?",
                          (mailbox_id, msg.uid))
                c.execute("UPDATE mailboxes SET exists_count = exists_count - 1 WHERE id=?",
                          (mailbox_id,))
                for table in PACK_TABLES:
                    c.execute(f"DELETE FROM {table} WHERE mailbox_id=? AND first_uid<=? "
                              "AND last_uid>=?", (mailbox_id, msg.uid, msg.uid))
                c.execute("DELETE FROM text_postings WHERE mailbox_id=? AND uid=?",
                          (mailbox_id, msg.uid))
                modseq = _bump(c, mailbox_id)
                c.execute("INSERT OR REPLACE INTO vanished (mailbox_id, uid, modseq, flags) "
                          "VALUES (?,?,?,?)",
                          (mailbox_id, msg.uid, modseq, _flags_text(msg.flags)))
                orphan = _orphans(c, [msg.blob_id])
                out.append(Expunged(msg.uid, modseq, orphan[0] if orphan else None))
            return out

        return await self.db.write(op)

    async def expunged_flags(self, mailbox_id: int,
                             uids: Sequence[int]) -> dict[int, FlagChange]:
        def op(c: sqlite3.Connection) -> dict[int, FlagChange]:
            _box_modseq(c, mailbox_id)
            wanted = sorted(set(uids))
            out: dict[int, FlagChange] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                for uid, modseq, flags in c.execute(
                        f"SELECT uid, modseq, flags FROM vanished WHERE mailbox_id=? "
                        f"AND uid IN ({marks})", (mailbox_id, *part)):
                    out[uid] = FlagChange(uid, frozenset(flags.split()), modseq)
            return out

        return await self.db.read(op, inline=len(uids) <= INLINE_ROWS)

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> list[tuple[int, Appended]]:
        def op(c: sqlite3.Connection) -> list[tuple[int, Appended]]:
            _box_modseq(c, src_mailbox_id)
            _box_modseq(c, dst_mailbox_id)
            src = _select_uids(c, src_mailbox_id, uids)
            appended = _append(c, [NewMessage(dst_mailbox_id, m.blob_id, m.size,
                                              m.internaldate, m.flags, m.summary)
                                   for m in src])
            return [(m.uid, a) for m, a in zip(src, appended, strict=True)]

        return await self.db.write(op)

    async def changes_since(self, mailbox_id: int, modseq: int, *,
                            with_summary: bool = True) -> Changes:
        def op(c: sqlite3.Connection) -> Changes:
            highest = _box_modseq(c, mailbox_id)
            changed = tuple(_message(r) for r in c.execute(
                f"SELECT {_cols(with_summary)} FROM messages WHERE mailbox_id=? AND modseq>? "
                "ORDER BY uid", (mailbox_id, modseq)))
            vanished = tuple(r[0] for r in c.execute(
                "SELECT uid FROM vanished WHERE mailbox_id=? AND modseq>? ORDER BY uid",
                (mailbox_id, modseq)))
            return Changes(highest, changed, vanished)

        def small(c: sqlite3.Connection) -> Changes | None:
            if _more_than(c, "messages", mailbox_id, modseq) \
                    or _more_than(c, "vanished", mailbox_id, modseq):
                return None
            return op(c)

        # Usually a handful of rows: read inline; a big change goes to a thread.
        found = await self.db.read(small, inline=True)
        return found if found is not None else await self.db.read(op)

    async def _get_packs(self, table: str, mailbox_id: int, first_uid: int,
                         last_uid: int) -> list[DigestPack]:
        assert table in PACK_TABLES

        def op(c: sqlite3.Connection) -> list[DigestPack]:
            _box_modseq(c, mailbox_id)
            return [DigestPack(mailbox_id, r[0], r[1], r[2], bytes(r[3])) for r in c.execute(
                f"SELECT first_uid, last_uid, count, data FROM {table} "
                "WHERE mailbox_id=? AND first_uid<=? AND last_uid>=? ORDER BY first_uid",
                (mailbox_id, last_uid, first_uid))]

        return await self.db.read(op, inline=last_uid - first_uid < 2 * INLINE_ROWS)

    async def _put_pack(self, table: str, pack: DigestPack) -> bool:
        assert table in PACK_TABLES

        def op(c: sqlite3.Connection) -> bool:
            _box_modseq(c, pack.mailbox_id)
            (present,) = c.execute(
                "SELECT count(*) FROM messages WHERE mailbox_id=? AND uid BETWEEN ? AND ?",
                (pack.mailbox_id, pack.first_uid, pack.last_uid)).fetchone()
            old = c.execute(f"SELECT last_uid FROM {table} WHERE mailbox_id=? AND "
                            "first_uid=?", (pack.mailbox_id, pack.first_uid)).fetchone()
            if present != pack.count or (old is not None and old[0] > pack.last_uid):
                return False
            c.execute(f"INSERT OR REPLACE INTO {table} VALUES (?,?,?,?,?)",
                      (pack.mailbox_id, pack.first_uid, pack.last_uid, pack.count, pack.data))
            return True

        return await self.db.write(op, durable=False)

    async def get_text_postings(self, mailbox_id: int, first_uid: int,
                                last_uid: int) -> list[TextPosting]:
        def op(c: sqlite3.Connection) -> list[TextPosting]:
            _box_modseq(c, mailbox_id)
            return [TextPosting(mailbox_id, r[0], bytes(r[1]), bytes(r[2])) for r in c.execute(
                "SELECT uid, key, data FROM text_postings WHERE mailbox_id=? "
                "AND uid BETWEEN ? AND ? ORDER BY uid", (mailbox_id, first_uid, last_uid))]

        return await self.db.read(op)

    async def delete_text_postings(self, mailbox_id: int, uids: Sequence[int]) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM text_postings WHERE mailbox_id=? AND uid=?",
                          [(mailbox_id, u) for u in uids])

        await self.db.write(op, durable=False)

    async def close(self) -> None:
        self.db.close()
