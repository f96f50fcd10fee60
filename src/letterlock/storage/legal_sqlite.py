"""Legal matters, holds and user notices in ``HOME/control/legal.sqlite3``.

Operator records only: requests, decisions, holds and notice schedules. No account
data lives here beyond addresses and the ids of held (sealed) blobs.

A step of a matter changes several rows at once and is recorded by audit events:
:class:`LegalTxn` collects the changes and the events, :meth:`LegalStore.commit`
applies them in one transaction. The events wait in ``audit_outbox`` until the
legal service has put them in the audit log (see ``services/legal/journal.py``), so a
crash between the two leaves the events to be delivered, never a half-made step.
Blobs a released hold no longer keeps wait in ``blob_purges`` until deleted.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from letterlock.errors import AlreadyExists, NotFound, Refused
from letterlock.storage.legal_file_sqlite import FILE_SCHEMA
from letterlock.storage.sqlite_db import SqliteDb

LEGAL_DB = "legal.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS matters (
    id TEXT PRIMARY KEY,
    filed_at TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,          -- LEGAL.md request JSON
    facts TEXT NOT NULL,            -- facts JSON used for the evaluation
    recommendation TEXT,            -- decision JSON recommended by the policy
    decision TEXT,                  -- decision JSON as decided by a human
    overridden INTEGER NOT NULL DEFAULT 0,
    justification TEXT,
    decided_by TEXT,
    package TEXT,                   -- path of the production package, if any
    next_due TEXT,                  -- earliest open deadline (ISO), for `list --due`
    closed_at TEXT
);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    address TEXT NOT NULL,
    region TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX IF NOT EXISTS holds_by_address ON holds(address);
CREATE TABLE IF NOT EXISTS held_blobs (
    hold_id INTEGER NOT NULL REFERENCES holds(id),
    region TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    orphaned INTEGER NOT NULL DEFAULT 1, -- expunged: only the hold keeps the blob
    mailbox TEXT,                   -- what the mailbox said of the message when the
    uid INTEGER,                    -- hold was placed (NULL: expunged later, unknown)
    size INTEGER,
    internaldate TEXT,
    flags TEXT,
    PRIMARY KEY (hold_id, blob_id)
);
CREATE TABLE IF NOT EXISTS gag_lifts (
    matter_id TEXT PRIMARY KEY REFERENCES matters(id),
    lifted_at TEXT NOT NULL,
    lifted_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gag_extensions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    extended_at TEXT NOT NULL,
    extended_by TEXT NOT NULL,
    until TEXT                      -- NULL: without end date
);
CREATE TABLE IF NOT EXISTS audit_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,            -- the event as recorded by the step (JSON)
    sent TEXT,                      -- as handed to the audit log, once tried (JSON)
    log_from INTEGER                -- the log's size before it was tried
);
CREATE TABLE IF NOT EXISTS blob_purges (
    region TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    PRIMARY KEY (region, blob_id)
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    address TEXT NOT NULL,
    due_at TEXT,                    -- NULL: waits for the gag to be lifted
    sent_at TEXT,
    text TEXT NOT NULL,
    blob_id TEXT                    -- the notice as delivered (never produced as mail)
);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    proposal TEXT NOT NULL,         -- a decision awaiting a second operator (JSON)
    outcome TEXT                    -- approved | refused; NULL while it waits
);
"""


@dataclass(frozen=True)
class MatterRow:
    id: str
    filed_at: datetime
    filed_by: str
    state: str
    request: str
    facts: str
    recommendation: str | None
    decision: str | None
    overridden: bool
    justification: str | None
    decided_by: str | None
    package: str | None
    next_due: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class HoldRow:
    id: int
    matter_id: str
    address: str
    region: str
    placed_at: datetime
    expires_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class NoticeRow:
    id: int
    matter_id: str
    address: str
    due_at: datetime | None
    sent_at: datetime | None
    text: str
    blob_id: str | None = None
    """The sealed blob the notice was delivered as: the provider's own mail, which a
    production leaves out of the user's mail."""


@dataclass(frozen=True)
class HeldMessage:
    """A message a hold keeps: recorded when the hold was placed (with what the
    mailbox said of it), or kept when expunged under the hold (only its blob)."""

    region: str
    blob_id: str
    mailbox: str | None = None
    uid: int | None = None
    size: int | None = None
    internaldate: datetime | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxRow:
    """An audit event committed with its step, not yet known to be in the log."""

    id: int
    event: str
    sent: str | None
    log_from: int | None


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _matter(row: tuple[object, ...]) -> MatterRow:
    (mid, filed_at, filed_by, state, request, facts, recommendation, decision, overridden,
     justification, decided_by, package, next_due, closed_at) = row
    filed = _dt(str(filed_at))
    assert filed is not None
    return MatterRow(str(mid), filed, str(filed_by), str(state), str(request), str(facts),
                     None if recommendation is None else str(recommendation),
                     None if decision is None else str(decision), bool(overridden),
                     None if justification is None else str(justification),
                     None if decided_by is None else str(decided_by),
                     None if package is None else str(package),
                     _dt(None if next_due is None else str(next_due)),
                     _dt(None if closed_at is None else str(closed_at)))


def _hold(row: tuple[object, ...]) -> HoldRow:
    hid, matter_id, address, region, placed, expires, released = row
    placed_at, expires_at = _dt(str(placed)), _dt(str(expires))
    assert placed_at is not None and expires_at is not None
    return HoldRow(int(str(hid)), str(matter_id), str(address), str(region), placed_at,
                   expires_at, _dt(None if released is None else str(released)))


def _notice(row: tuple[object, ...]) -> NoticeRow:
    nid, matter_id, address, due, sent, text, blob = row
    return NoticeRow(int(str(nid)), str(matter_id), str(address),
                     _dt(None if due is None else str(due)),
                     _dt(None if sent is None else str(sent)), str(text),
                     None if blob is None else str(blob))


_MATTER_COLS = ("id, filed_at, filed_by, state, request, facts, recommendation, decision, "
                "overridden, justification, decided_by, package, next_due, closed_at")
_HOLD_COLS = "id, matter_id, address, region, placed_at, expires_at, released_at"
_NOTICE_COLS = "id, matter_id, address, due_at, sent_at, text, blob_id"


_ADDED_COLUMNS = {
    "held_blobs": (("orphaned", "INTEGER NOT NULL DEFAULT 1"), ("mailbox", "TEXT"),
                   ("uid", "INTEGER"), ("size", "INTEGER"), ("internaldate", "TEXT"),
                   ("flags", "TEXT")),
    "notices": (("blob_id", "TEXT"),),
}


def _upgrade(path: Path) -> None:
    """Columns added after the first release (CREATE TABLE IF NOT EXISTS does not add
    them to an existing table). Blobs held before were all expunged ones."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    try:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                    except sqlite3.OperationalError as exc:  # another process was first
                        if "duplicate column" not in str(exc):
                            raise
        conn.commit()


Step = Callable[[sqlite3.Connection], object]
T = TypeVar("T")


class LegalTxn:
    """The changes of one step of a matter and the audit events that record it,
    applied together by :meth:`LegalStore.commit` (all or nothing)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add_matter(self, row: MatterRow) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute(f"INSERT INTO matters ({_MATTER_COLS}) VALUES "
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          (row.id, _ts(row.filed_at), row.filed_by, row.state, row.request,
                           row.facts, row.recommendation, row.decision, int(row.overridden),
                           row.justification, row.decided_by, row.package,
                           _ts(row.next_due), _ts(row.closed_at)))
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"legal matter {row.id} exists already") from exc
        self.steps.append(fn)

    def update_matter(self, row: MatterRow, *, was: str | Sequence[str]) -> None:
        """Change the matter, provided it is still in state ``was`` (one of them):
        of two processes deciding one matter at once, the second is refused."""
        states = (was,) if isinstance(was, str) else tuple(was)

        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE matters SET state=?, facts=?, recommendation=?, decision=?, "
                "overridden=?, justification=?, decided_by=?, package=?, next_due=?, "
                f"closed_at=? WHERE id=? AND state IN ({','.join('?' * len(states))})",
                (row.state, row.facts, row.recommendation, row.decision,
                 int(row.overridden), row.justification, row.decided_by, row.package,
                 _ts(row.next_due), _ts(row.closed_at), row.id, *states))
            if cur.rowcount != 1:
                raise Refused(f"matter {row.id} was changed meanwhile; look at it again")
        self.steps.append(fn)

    def add_hold(self, matter_id: str, address: str, region: str, placed_at: datetime,
                 expires_at: datetime, messages: Sequence[HeldMessage] = ()) -> None:
        """A hold on the account, recording the ``messages`` it holds now (kept only
        if expunged while the hold lasts: see :meth:`LegalStore.keep_blobs`)."""
        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute("INSERT INTO holds (matter_id, address, region, placed_at, "
                            "expires_at) VALUES (?,?,?,?,?)",
                            (matter_id, address, region, _ts(placed_at), _ts(expires_at)))
            c.executemany(
                "INSERT OR IGNORE INTO held_blobs (hold_id, region, blob_id, orphaned, "
                "mailbox, uid, size, internaldate, flags) VALUES (?,?,?,0,?,?,?,?,?)",
                [(cur.lastrowid, m.region, m.blob_id, m.mailbox, m.uid, m.size,
                  _ts(m.internaldate), " ".join(m.flags)) for m in messages])
        self.steps.append(fn)

    def release_hold(self, hold_id: int, at: datetime) -> None:
        """Mark the hold released; blobs no other live hold keeps go to the purge
        queue (:meth:`LegalStore.pending_purges`)."""
        def fn(c: sqlite3.Connection) -> None:
            c.execute("UPDATE holds SET released_at=? WHERE id=? AND released_at IS NULL",
                      (_ts(at), hold_id))
            c.execute("INSERT OR IGNORE INTO blob_purges (region, blob_id) "
                      "SELECT region, blob_id FROM held_blobs WHERE hold_id=? AND orphaned "
                      "AND blob_id NOT IN (SELECT hb.blob_id FROM held_blobs hb JOIN holds h "
                      "ON h.id = hb.hold_id WHERE h.released_at IS NULL AND h.id != ?)",
                      (hold_id, hold_id))
            c.execute("DELETE FROM held_blobs WHERE hold_id=?", (hold_id,))
        self.steps.append(fn)

    def add_notice(self, matter_id: str, address: str, due_at: datetime | None,
                   text: str) -> None:
        self.steps.append(lambda c: c.execute(
            "INSERT INTO notices (matter_id, address, due_at, text) VALUES (?,?,?,?)",
            (matter_id, address, _ts(due_at), text)))

    def mark_notice_sent(self, notice_id: int, at: datetime,
                         blob_id: str | None = None) -> None:
        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE notices SET sent_at=?, blob_id=? "
                            "WHERE id=? AND sent_at IS NULL", (_ts(at), blob_id, notice_id))
            if cur.rowcount != 1:
                raise Refused(f"notice {notice_id} was sent already")
        self.steps.append(fn)

    def extend_gag(self, matter_id: str, at: datetime, by: str,
                   until: datetime | None) -> None:
        """The matter's non-disclosure order now ends at ``until`` (None: no end)."""
        self.steps.append(lambda c: c.execute(
            "INSERT INTO gag_extensions (matter_id, extended_at, extended_by, until) "
            "VALUES (?,?,?,?)", (matter_id, _ts(at), by, _ts(until))))

    def set_pending_notices_due(self, matter_id: str, at: datetime | None) -> None:
        self.steps.append(lambda c: c.execute(
            "UPDATE notices SET due_at=? WHERE matter_id=? AND sent_at IS NULL",
            (_ts(at), matter_id)))

    def lift_gag(self, matter_id: str, at: datetime, by: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO gag_lifts VALUES (?,?,?)", (matter_id, _ts(at), by))
            except sqlite3.IntegrityError as exc:
                raise Refused(f"the order on matter {matter_id} was lifted already") from exc
        self.steps.append(fn)

    def add_proposal(self, matter_id: str, proposal: str) -> None:
        """A decision (JSON) that waits for a second operator's approval."""
        self.steps.append(lambda c: c.execute(
            "INSERT INTO approvals (matter_id, proposal) VALUES (?,?)", (matter_id, proposal)))

    def resolve_proposal(self, proposal_id: int, proposal: str, outcome: str) -> None:
        """Approve or refuse a waiting proposal (refused if it was resolved meanwhile)."""
        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE approvals SET proposal=?, outcome=? "
                            "WHERE id=? AND outcome IS NULL", (proposal, outcome, proposal_id))
            if cur.rowcount != 1:
                raise Refused("the proposal was approved or refused meanwhile")
        self.steps.append(fn)

    def log(self, event: str) -> None:
        """An audit event (JSON) recording this step, for the audit outbox."""
        self.steps.append(lambda c: c.execute(
            "INSERT INTO audit_outbox (event) VALUES (?)", (event,)))


class LegalStore:
    """Async access to the legal database (SQLite off the event loop)."""

    def __init__(self, control_dir: Path, *, fsync: bool = True) -> None:
        self._db = SqliteDb(control_dir / LEGAL_DB, SCHEMA + FILE_SCHEMA, fsync=fsync)
        _upgrade(control_dir / LEGAL_DB)

    async def close(self) -> None:
        self._db.close()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a reader (e.g. storage/legal_file_sqlite.py's) in a read transaction."""
        return await self._db.read(fn)

    async def commit(self, txn: LegalTxn) -> None:
        """Apply every change of ``txn`` in one durable transaction, or none."""
        def fn(c: sqlite3.Connection) -> None:
            for step in txn.steps:
                step(c)
        await self._db.write(fn)

    # -- the audit outbox and the purge queue -----------------------------------------

    async def outbox(self) -> list[OutboxRow]:
        def fn(c: sqlite3.Connection) -> list[OutboxRow]:
            return [OutboxRow(int(r[0]), str(r[1]), None if r[2] is None else str(r[2]),
                              None if r[3] is None else int(r[3]))
                    for r in c.execute("SELECT id, event, sent, log_from FROM audit_outbox "
                                       "ORDER BY id")]
        return await self._db.read(fn)

    async def outbox_trying(self, sent: Sequence[tuple[int, str]], log_from: int) -> None:
        """Record that these events (as handed to the log) are about to be appended
        to a log of at least ``log_from`` events."""
        def fn(c: sqlite3.Connection) -> None:
            c.executemany("UPDATE audit_outbox SET sent=?, log_from=? WHERE id=?",
                          [(text, log_from, oid) for oid, text in sent])
        await self._db.write(fn)

    async def outbox_done(self, ids: Sequence[int]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM audit_outbox WHERE id=?", [(i,) for i in ids])
        await self._db.write(fn)

    async def pending_purges(self) -> list[tuple[str, str]]:
        def fn(c: sqlite3.Connection) -> list[tuple[str, str]]:
            return [(str(r[0]), str(r[1])) for r in c.execute(
                "SELECT region, blob_id FROM blob_purges ORDER BY region, blob_id")]
        return await self._db.read(fn)

    async def purged(self, blobs: Sequence[tuple[str, str]]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM blob_purges WHERE region=? AND blob_id=?", blobs)
        await self._db.write(fn)

    async def lifted_matters(self) -> list[str]:
        def fn(c: sqlite3.Connection) -> list[str]:
            return [str(r[0]) for r in c.execute("SELECT matter_id FROM gag_lifts")]
        return await self._db.read(fn)

    # -- matters ----------------------------------------------------------------------

    async def get_matter(self, matter_id: str) -> MatterRow:
        def fn(c: sqlite3.Connection) -> MatterRow | None:
            r = c.execute(f"SELECT {_MATTER_COLS} FROM matters WHERE id=?",
                          (matter_id,)).fetchone()
            return None if r is None else _matter(r)
        row = await self._db.read(fn)
        if row is None:
            raise NotFound(f"no legal matter {matter_id}")
        return row

    async def list_matters(self) -> list[MatterRow]:
        def fn(c: sqlite3.Connection) -> list[MatterRow]:
            return [_matter(r) for r in c.execute(
                f"SELECT {_MATTER_COLS} FROM matters ORDER BY filed_at, id")]
        return await self._db.read(fn)

    async def proposals(self, matter_id: str) -> list[tuple[int, str, str | None]]:
        """The matter's proposals awaiting or given approval: (id, JSON, outcome),
        oldest first."""
        def fn(c: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
            return [(int(r[0]), str(r[1]), None if r[2] is None else str(r[2]))
                    for r in c.execute("SELECT id, proposal, outcome FROM approvals "
                                       "WHERE matter_id=? ORDER BY id", (matter_id,))]
        return await self._db.read(fn)

    async def count_matters(self) -> int:
        def fn(c: sqlite3.Connection) -> int:
            return int(c.execute("SELECT count(*) FROM matters").fetchone()[0])
        return await self._db.read(fn)

    # -- holds ------------------------------------------------------------------------

    async def holds(self, *, address: str | None = None, matter_id: str | None = None,
                    active_at: datetime | None = None) -> list[HoldRow]:
        def fn(c: sqlite3.Connection) -> list[HoldRow]:
            rows = [_hold(r) for r in c.execute(f"SELECT {_HOLD_COLS} FROM holds ORDER BY id")]
            return [h for h in rows
                    if (address is None or h.address == address)
                    and (matter_id is None or h.matter_id == matter_id)
                    and (active_at is None
                         or (h.released_at is None and h.expires_at > active_at))]
        return await self._db.read(fn)

    async def keep_blobs(self, hold_ids: Sequence[int], region: str,
                         blob_ids: Sequence[str]) -> None:
        """These blobs were expunged while the holds last: each hold keeps them."""
        def fn(c: sqlite3.Connection) -> None:
            c.executemany("INSERT INTO held_blobs (hold_id, region, blob_id, orphaned) "
                          "VALUES (?,?,?,1) ON CONFLICT (hold_id, blob_id) "
                          "DO UPDATE SET orphaned=1",
                          [(h, region, b) for h in hold_ids for b in blob_ids])
        await self._db.write(fn)

    async def region_blob_ids(self, region: str) -> set[str]:
        """Every blob id of ``region`` this store names (kept by a hold, waiting to be
        purged, or a delivered notice): a backup of the region must keep them, and
        a restored blob store must never hand them out again."""
        def fn(c: sqlite3.Connection) -> set[str]:
            return {str(r[0]) for r in c.execute(
                "SELECT blob_id FROM held_blobs WHERE region=? AND orphaned "
                "UNION SELECT blob_id FROM blob_purges WHERE region=?", (region, region))}
        return await self._db.read(fn)

    async def held_blobs(self, hold_id: int) -> list[str]:
        """The blobs only this hold keeps now (their messages were expunged)."""
        def fn(c: sqlite3.Connection) -> list[str]:
            return [str(r[0]) for r in c.execute(
                "SELECT blob_id FROM held_blobs WHERE hold_id=? AND orphaned "
                "ORDER BY blob_id", (hold_id,))]
        return await self._db.read(fn)

    async def held_messages(self, address: str) -> list[HeldMessage]:
        """What the account's holds not yet released keep, one entry per blob (the
        one with what the mailbox said of it, if any hold recorded that)."""
        def fn(c: sqlite3.Connection) -> list[HeldMessage]:
            out: dict[str, HeldMessage] = {}
            for region, blob, box, uid, size, date, flags in c.execute(
                    "SELECT hb.region, hb.blob_id, hb.mailbox, hb.uid, hb.size, "
                    "hb.internaldate, hb.flags FROM held_blobs hb JOIN holds h "
                    "ON h.id = hb.hold_id WHERE h.address=? AND h.released_at IS NULL "
                    "ORDER BY hb.uid IS NULL, h.id, hb.uid", (address,)):
                out.setdefault(str(blob), HeldMessage(
                    str(region), str(blob), None if box is None else str(box),
                    None if uid is None else int(uid), None if size is None else int(size),
                    _dt(None if date is None else str(date)),
                    tuple(str(flags).split()) if flags else ()))
            return list(out.values())
        return await self._db.read(fn)

    # -- notices ----------------------------------------------------------------------

    async def notices(self, *, matter_id: str | None = None,
                      address: str | None = None) -> list[NoticeRow]:
        def fn(c: sqlite3.Connection) -> list[NoticeRow]:
            rows = [_notice(r) for r in c.execute(
                f"SELECT {_NOTICE_COLS} FROM notices ORDER BY id")]
            return [n for n in rows if (matter_id is None or n.matter_id == matter_id)
                    and (address is None or n.address == address)]
        return await self._db.read(fn)

    async def gag_extensions(self) -> dict[str, datetime | None]:
        """Matter -> the end of its order as last extended (None: no end date)."""
        def fn(c: sqlite3.Connection) -> dict[str, datetime | None]:
            return {str(m): _dt(u) for m, u in c.execute(
                "SELECT matter_id, until FROM gag_extensions ORDER BY id")}
        return await self._db.read(fn)

    async def gag_lifted_at(self, matter_id: str) -> datetime | None:
        def fn(c: sqlite3.Connection) -> datetime | None:
            row = c.execute("SELECT lifted_at FROM gag_lifts WHERE matter_id=?",
                            (matter_id,)).fetchone()
            return None if row is None else _dt(str(row[0]))
        return await self._db.read(fn)
