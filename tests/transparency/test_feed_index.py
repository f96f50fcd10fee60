"""The access feed's index persists: a restarted feed reads only the events logged
since it was saved, and an index that is damaged or belongs to another history of the
log is not trusted (rebuilt from the log, with the same answers)."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.keys import PRIVATE_FILE, PUBLIC_FILE
from letterlock.audit.store import MerkleLog, init_log
from letterlock.services.transparency import feed_index
from letterlock.services.transparency.access_feed import AccessFeed

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACCOUNTS = 7


def events(start: int, count: int, tag: str = "a", shift: int = 0) -> list[AuditEvent]:
    return [AuditEvent(EventType.ADMIN_MAIL_IMPORTED, f"op-{tag}", T0 + timedelta(seconds=i),
                       account=f"user{(i + shift) % ACCOUNTS}@example.test")
            for i in range(start, start + count)]


def make_log(control: Path, count: int, tag: str = "a") -> Path:
    audit = control / "audit"
    init_log(audit)
    with MerkleLog(audit) as log:
        log.append(events(0, count, tag))
    return audit


def listing(feed: AccessFeed, who: str) -> list[tuple[int, str]]:
    page = feed.page(who, limit=500)
    assert all(e["event"]["account"] == who for e in page.events)
    return [(e["index"], e["event"]["actor"]) for e in page.events]


def test_a_restarted_feed_reads_only_new_events(tmp_path: Path) -> None:
    audit = make_log(tmp_path, 2000)
    first = AccessFeed(audit)
    before = listing(first, "user3@example.test")
    assert first.scanned_from_log == 2000
    first.close()
    assert (tmp_path / feed_index.INDEX_FILE).is_file()

    again = AccessFeed(audit)
    assert listing(again, "user3@example.test") == before
    assert again.scanned_from_log == 0
    again.close()

    with MerkleLog(audit) as log:
        log.append(events(2000, 15))
    later = AccessFeed(audit)
    after = listing(later, "user3@example.test")
    assert later.scanned_from_log == 15
    assert after[: len(before)] == before
    assert [i for i, _ in after[len(before):]] == [i for i in range(2000, 2015) if i % 7 == 3]
    later.close()


def test_the_index_is_saved_while_serving(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_index, "SAVE_AFTER", 500)
    audit = make_log(tmp_path, 1200)
    feed = AccessFeed(audit)
    listing(feed, "user1@example.test")
    # no close (a crash): what was saved is used, the rest scanned again
    restarted = AccessFeed(audit)
    listing(restarted, "user1@example.test")
    assert restarted.scanned_from_log == 0
    with MerkleLog(audit) as log:
        log.append(events(1200, 30))
    listing(feed, "user1@example.test")
    crashed = AccessFeed(audit)
    listing(crashed, "user1@example.test")
    assert crashed.scanned_from_log == 30
    for f in (feed, restarted, crashed):
        f.close()


def test_a_damaged_index_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = make_log(tmp_path, 800)
    feed = AccessFeed(audit)
    expected = listing(feed, "user2@example.test")
    feed.close()
    path = tmp_path / feed_index.INDEX_FILE
    data = bytearray(path.read_bytes())
    at = data.index(b"user2@example.test") + 40
    data[at:at + 1] = b"9" if data[at:at + 1] != b"9" else b"8"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        rebuilt = AccessFeed(audit)
        assert listing(rebuilt, "user2@example.test") == expected
    assert rebuilt.scanned_from_log == 800
    assert "does not match its digest" in caplog.text
    rebuilt.close()
    path.write_bytes(b"garbage")
    third = AccessFeed(audit)
    assert listing(third, "user2@example.test") == expected
    third.close()


def test_an_index_of_another_history_is_not_trusted(tmp_path: Path) -> None:
    """Same log key, a different history of the same length: the root check catches it,
    whereas trusting the index would list another history's positions."""
    audit = make_log(tmp_path / "one", 600, tag="a")
    feed = AccessFeed(audit)
    listing(feed, "user0@example.test")
    feed.close()
    other = tmp_path / "two" / "audit"
    other.mkdir(parents=True)
    for name in (PRIVATE_FILE, PUBLIC_FILE):
        shutil.copy(audit / name, other / name)
    with MerkleLog(other, create=True) as log:
        log.append(events(0, 600, "b", shift=1))
    shutil.copy(tmp_path / "one" / feed_index.INDEX_FILE, tmp_path / "two" / feed_index.INDEX_FILE)
    moved = AccessFeed(other)
    shown = listing(moved, "user0@example.test")
    assert moved.scanned_from_log == 600
    assert {actor for _, actor in shown} == {"op-b"}
    assert [i for i, _ in shown] == [i for i in range(600) if (i + 1) % 7 == 0][:500]
    moved.close()
