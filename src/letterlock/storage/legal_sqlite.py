"""Legal matters, holds and user notices in ``HOME/control/legal.sqlite3``.

Operator records only: requests, decisions, holds and notice schedules. No account
data lives here beyond addresses and the ids of held (sealed) blobs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from letterlock.errors import NotFound
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
    PRIMARY KEY (hold_id, blob_id)
);
CREATE TABLE IF NOT EXISTS gag_lifts (
    matter_id TEXT PRIMARY KEY REFERENCES matters(id),
    lifted_at TEXT NOT NULL,
    lifted_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    address TEXT NOT NULL,
    due_at TEXT,                    -- NULL: waits for the gag to be lifted
    sent_at TEXT,
    text TEXT NOT NULL
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
    nid, matter_id, address, due, sent, text = row
    return NoticeRow(int(str(nid)), str(matter_id), str(address),
                     _dt(None if due is None else str(due)),
                     _dt(None if sent is None else str(sent)), str(text))


_MATTER_COLS = ("id, filed_at, filed_by, state, request, facts, recommendation, decision, "
                "overridden, justification, decided_by, package, next_due, closed_at")
_HOLD_COLS = "id, matter_id, address, region, placed_at, expires_at, released_at"
_NOTICE_COLS = "id, matter_id, address, due_at, sent_at, text"


class LegalStore:
    """Async access to the legal database (SQLite off the event loop)."""

    def __init__(self, control_dir: Path, *, fsync: bool = True) -> None:
        self._db = SqliteDb(control_dir / LEGAL_DB, SCHEMA, fsync=fsync)

    async def close(self) -> None:
        self._db.close()

    # -- matters ----------------------------------------------------------------------

    async def add_matter(self, row: MatterRow) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute(f"INSERT INTO matters ({_MATTER_COLS}) VALUES "
                      "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (row.id, _ts(row.filed_at), row.filed_by, row.state, row.request,
                       row.facts, row.recommendation, row.decision, int(row.overridden),
                       row.justification, row.decided_by, row.package, _ts(row.next_due),
                       _ts(row.closed_at)))
        await self._db.write(fn)

    async def update_matter(self, row: MatterRow) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("UPDATE matters SET state=?, facts=?, recommendation=?, decision=?, "
                      "overridden=?, justification=?, decided_by=?, package=?, next_due=?, "
                      "closed_at=? WHERE id=?",
                      (row.state, row.facts, row.recommendation, row.decision,
                       int(row.overridden), row.justification, row.decided_by, row.package,
                       _ts(row.next_due), _ts(row.closed_at), row.id))
        await self._db.write(fn)

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

    async def count_matters(self) -> int:
        def fn(c: sqlite3.Connection) -> int:
            return int(c.execute("SELECT count(*) FROM matters").fetchone()[0])
        return await self._db.read(fn)

    # -- holds ------------------------------------------------------------------------

    async def add_hold(self, matter_id: str, address: str, region: str, placed_at: datetime,
                       expires_at: datetime) -> HoldRow:
        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute("INSERT INTO holds (matter_id, address, region, placed_at, "
                            "expires_at) VALUES (?,?,?,?,?)",
                            (matter_id, address, region, _ts(placed_at), _ts(expires_at)))
            return int(cur.lastrowid or 0)
        hid = await self._db.write(fn)
        return HoldRow(hid, matter_id, address, region, placed_at, expires_at, None)

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

    async def keep_blobs(self, hold_id: int, region: str, blob_ids: list[str]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.executemany("INSERT OR IGNORE INTO held_blobs (hold_id, region, blob_id) "
                          "VALUES (?,?,?)", [(hold_id, region, b) for b in blob_ids])
        await self._db.write(fn)

    async def release_hold(self, hold_id: int, at: datetime) -> list[tuple[str, str]]:
        """Mark the hold released; returns (region, blob id) pairs no other live hold
        keeps, which the caller may now delete."""
        def fn(c: sqlite3.Connection) -> list[tuple[str, str]]:
            c.execute("UPDATE holds SET released_at=? WHERE id=? AND released_at IS NULL",
                      (_ts(at), hold_id))
            rows = c.execute(
                "SELECT region, blob_id FROM held_blobs WHERE hold_id=? AND blob_id NOT IN "
                "(SELECT hb.blob_id FROM held_blobs hb JOIN holds h ON h.id = hb.hold_id "
                " WHERE h.released_at IS NULL AND h.id != ?)", (hold_id, hold_id)).fetchall()
            c.execute("DELETE FROM held_blobs WHERE hold_id=?", (hold_id,))
            return [(str(r[0]), str(r[1])) for r in rows]
        return await self._db.write(fn)

    async def held_blobs(self, hold_id: int) -> list[str]:
        def fn(c: sqlite3.Connection) -> list[str]:
            return [str(r[0]) for r in c.execute(
                "SELECT blob_id FROM held_blobs WHERE hold_id=? ORDER BY blob_id", (hold_id,))]
        return await self._db.read(fn)

    # -- notices ----------------------------------------------------------------------

    async def add_notice(self, matter_id: str, address: str, due_at: datetime | None,
                         text: str) -> int:
        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute("INSERT INTO notices (matter_id, address, due_at, text) "
                            "VALUES (?,?,?,?)", (matter_id, address, _ts(due_at), text))
            return int(cur.lastrowid or 0)
        return await self._db.write(fn)

    async def notices(self, *, matter_id: str | None = None,
                      address: str | None = None) -> list[NoticeRow]:
        def fn(c: sqlite3.Connection) -> list[NoticeRow]:
            rows = [_notice(r) for r in c.execute(
                f"SELECT {_NOTICE_COLS} FROM notices ORDER BY id")]
            return [n for n in rows if (matter_id is None or n.matter_id == matter_id)
                    and (address is None or n.address == address)]
        return await self._db.read(fn)

    async def set_pending_notices_due(self, matter_id: str, at: datetime) -> int:
        """Make every unsent notice of the matter due at ``at``; returns how many."""
        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute("UPDATE notices SET due_at=? WHERE matter_id=? AND sent_at IS NULL",
                            (_ts(at), matter_id))
            return int(cur.rowcount)
        return await self._db.write(fn)

    async def lift_gag(self, matter_id: str, at: datetime, by: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO gag_lifts VALUES (?,?,?)", (matter_id, _ts(at), by))
        await self._db.write(fn)

    async def gag_lifted_at(self, matter_id: str) -> datetime | None:
        def fn(c: sqlite3.Connection) -> datetime | None:
            row = c.execute("SELECT lifted_at FROM gag_lifts WHERE matter_id=?",
                            (matter_id,)).fetchone()
            return None if row is None else _dt(str(row[0]))
        return await self._db.read(fn)

    async def mark_notice_sent(self, notice_id: int, at: datetime) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("UPDATE notices SET sent_at=? WHERE id=?", (_ts(at), notice_id))
        await self._db.write(fn)
