"""TLS reporting (RFC 8460) records in ``HOME/control/tls_reports.sqlite3``.

Three tables, none of which holds a user's address, a subject or anything of a
message: ``tls_sessions`` counts outbound sessions per UTC day, recipient (policy)
domain, policy, result and the two servers' addresses, only until that day's report
is made (the day after; a domain that asks for no report: its counts are dropped
then); ``tls_sent`` says which day's report went to which domain (90 days);
``tls_received`` keeps the reports other servers sent about ours, as they came
(JSON), until deleted. Not sealed: these are operator metadata about mail servers,
like a mail log's relay lines, and are kept out of the regions (a count is of every
region's mail together).

Counts are written without an fsync each (``durable=False``): a power cut may lose
the last few counts, never a message; a received report is durable before its
sender is told it was taken.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from letterlock.storage.sqlite_db import SqliteDb

TLS_REPORTS_DB = "tls_reports.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tls_sessions (
    day TEXT NOT NULL,              -- UTC date, YYYY-MM-DD
    domain TEXT NOT NULL,           -- the recipient (policy) domain
    policy_type TEXT NOT NULL,      -- sts, tlsa, no-policy-found
    policy TEXT NOT NULL,           -- JSON: [policy strings, mx patterns]
    result TEXT NOT NULL,           -- '' for success, else an RFC 8460 result type
    sending_ip TEXT NOT NULL,
    receiving_mx TEXT NOT NULL,
    receiving_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, domain, policy_type, policy, result, sending_ip, receiving_mx,
                 receiving_ip)
);
CREATE TABLE IF NOT EXISTS tls_sent (
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    report_id TEXT NOT NULL,
    done TEXT NOT NULL,             -- when it was sent (or found needless)
    outcome TEXT NOT NULL,          -- sent, or failed (given up)
    destinations TEXT NOT NULL,     -- the rua URIs it went to, comma-separated
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (day, domain)
);
CREATE TABLE IF NOT EXISTS tls_received (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received TEXT NOT NULL,
    via TEXT NOT NULL,              -- smtp or https
    organization TEXT NOT NULL,
    contact TEXT NOT NULL,
    report_id TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL,
    domains TEXT NOT NULL,          -- comma-separated policy domains
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    document TEXT NOT NULL,         -- the report's JSON as received
    UNIQUE (organization, report_id)
);
"""


@dataclass(frozen=True)
class SessionRow:
    day: date
    domain: str
    policy_type: str
    strings: tuple[str, ...]
    mx_hosts: tuple[str, ...]
    result: str
    sending_ip: str
    receiving_mx: str
    receiving_ip: str
    count: int


@dataclass(frozen=True)
class SentRow:
    day: date
    domain: str
    report_id: str
    done: datetime
    outcome: str
    destinations: str
    successes: int
    failures: int


@dataclass(frozen=True)
class ReceivedRow:
    id: int
    received: datetime
    via: str
    organization: str
    contact: str
    report_id: str
    start: datetime
    end: datetime
    domains: tuple[str, ...]
    successes: int
    failures: int
    document: str


_RECEIVED_COLS = (
    "id, received, via, organization, contact, report_id, start, end, "
    "domains, successes, failures, document"
)


def _received(r: tuple[object, ...]) -> ReceivedRow:
    return ReceivedRow(
        int(str(r[0])),
        datetime.fromisoformat(str(r[1])),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        datetime.fromisoformat(str(r[6])),
        datetime.fromisoformat(str(r[7])),
        tuple(d for d in str(r[8]).split(",") if d),
        int(str(r[9])),
        int(str(r[10])),
        str(r[11]),
    )


class TlsReportStore:
    """Async access to the TLS reporting database (SQLite off the event loop)."""

    def __init__(self, control_dir: Path, *, fsync: bool = True) -> None:
        self._db = SqliteDb(control_dir / TLS_REPORTS_DB, SCHEMA, fsync=fsync)

    async def close(self) -> None:
        self._db.close()

    # -- outbound sessions ------------------------------------------------------------
    async def count_session(self, row: SessionRow) -> None:
        """Add ``row.count`` sessions to the day's count of sessions like it."""
        key = (
            row.day.isoformat(),
            row.domain,
            row.policy_type,
            json.dumps([list(row.strings), list(row.mx_hosts)]),
            row.result,
            row.sending_ip,
            row.receiving_mx,
            row.receiving_ip,
        )

        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO tls_sessions VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO UPDATE SET count = count + excluded.count",
                (*key, row.count),
            )

        await self._db.write(fn, durable=False)

    async def sessions(self, day: date, domain: str) -> list[SessionRow]:
        def fn(c: sqlite3.Connection) -> list[SessionRow]:
            out = []
            for r in c.execute(
                "SELECT policy_type, policy, result, sending_ip, "
                "receiving_mx, receiving_ip, count FROM tls_sessions "
                "WHERE day=? AND domain=? ORDER BY rowid",
                (day.isoformat(), domain),
            ):
                strings, mx = json.loads(r[1])
                out.append(
                    SessionRow(
                        day,
                        domain,
                        r[0],
                        tuple(strings),
                        tuple(mx),
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        int(r[6]),
                    )
                )
            return out

        return await self._db.read(fn)

    async def unreported(self, before: date) -> list[tuple[date, str]]:
        """(day, domain) pairs with counted sessions before ``before`` whose report
        is not done yet, oldest first."""

        def fn(c: sqlite3.Connection) -> list[tuple[date, str]]:
            return [
                (date.fromisoformat(d), str(dom))
                for d, dom in c.execute(
                    "SELECT DISTINCT s.day, s.domain FROM tls_sessions s WHERE s.day < ? AND "
                    "NOT EXISTS (SELECT 1 FROM tls_sent t WHERE t.day = s.day AND "
                    "t.domain = s.domain) ORDER BY s.day, s.domain",
                    (before.isoformat(),),
                )
            ]

        return await self._db.read(fn)

    async def mark_reported(self, row: SentRow) -> None:
        """Record the day's report for the domain and delete the counts it was made
        of (in one transaction)."""

        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "DELETE FROM tls_sessions WHERE day=? AND domain=?",
                (row.day.isoformat(), row.domain),
            )
            c.execute(
                "INSERT OR REPLACE INTO tls_sent VALUES (?,?,?,?,?,?,?,?)",
                (
                    row.day.isoformat(),
                    row.domain,
                    row.report_id,
                    row.done.isoformat(),
                    row.outcome,
                    row.destinations,
                    row.successes,
                    row.failures,
                ),
            )

        await self._db.write(fn)

    async def sent(self, limit: int = 100) -> list[SentRow]:
        def fn(c: sqlite3.Connection) -> list[SentRow]:
            return [
                SentRow(
                    date.fromisoformat(r[0]),
                    r[1],
                    r[2],
                    datetime.fromisoformat(r[3]),
                    r[4],
                    r[5],
                    int(r[6]),
                    int(r[7]),
                )
                for r in c.execute(
                    "SELECT * FROM tls_sent ORDER BY day DESC, domain LIMIT ?", (limit,)
                )
            ]

        return await self._db.read(fn)

    async def forget_day(self, day: date, domain: str) -> None:
        """Delete the session counts of ``domain`` on ``day`` (nothing to report)."""

        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "DELETE FROM tls_sessions WHERE day=? AND domain=?", (day.isoformat(), domain)
            )

        await self._db.write(fn)

    async def forget_sent(self, before: date) -> int:
        """Delete what is known of reports sent for days before ``before``."""

        def fn(c: sqlite3.Connection) -> int:
            return c.execute("DELETE FROM tls_sent WHERE day < ?", (before.isoformat(),)).rowcount

        result: int = await self._db.write(fn)
        return result

    # -- received reports -------------------------------------------------------------
    async def add_received(self, row: ReceivedRow) -> tuple[int, bool]:
        """Store a received report; (its id, whether it is new). The same report
        (organization and report id) sent twice is kept once."""

        def fn(c: sqlite3.Connection) -> tuple[int, bool]:
            found = c.execute(
                "SELECT id FROM tls_received WHERE organization=? AND report_id=?",
                (row.organization, row.report_id),
            ).fetchone()
            if found is not None:
                return int(found[0]), False
            cur = c.execute(
                "INSERT INTO tls_received (received, via, organization, contact, "
                "report_id, start, end, domains, successes, failures, document) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.received.isoformat(),
                    row.via,
                    row.organization,
                    row.contact,
                    row.report_id,
                    row.start.isoformat(),
                    row.end.isoformat(),
                    ",".join(row.domains),
                    row.successes,
                    row.failures,
                    row.document,
                ),
            )
            return int(cur.lastrowid or 0), True

        result: tuple[int, bool] = await self._db.write(fn)
        return result

    async def received(self, limit: int = 100) -> list[ReceivedRow]:
        """The latest received reports, newest first."""

        def fn(c: sqlite3.Connection) -> list[ReceivedRow]:
            return [
                _received(r)
                for r in c.execute(
                    f"SELECT {_RECEIVED_COLS} FROM tls_received ORDER BY id DESC LIMIT ?", (limit,)
                )
            ]

        return await self._db.read(fn)

    async def get_received(self, report: int) -> ReceivedRow | None:
        def fn(c: sqlite3.Connection) -> ReceivedRow | None:
            r = c.execute(
                f"SELECT {_RECEIVED_COLS} FROM tls_received WHERE id=?", (report,)
            ).fetchone()
            return None if r is None else _received(r)

        return await self._db.read(fn)
