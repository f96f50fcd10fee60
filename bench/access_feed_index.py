"""Access feed index benchmark: the privacy center's first page on a large audit log,
without the persisted index (a scan of every event) and after a restart with it.

    .venv/bin/python bench/access_feed_index.py [--events 1000000] [--dir DIR]

Builds the log in a temporary directory (or DIR/control/audit) with the real store.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.store import MerkleLog, init_log
from letterlock.services.transparency import feed_index
from letterlock.services.transparency.access_feed import AccessFeed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 20_000


def build(audit: Path, events: int, accounts: int) -> float:
    init_log(audit)
    start = time.perf_counter()
    with MerkleLog(audit) as log:
        for first in range(0, events, BATCH):
            log.append([
                AuditEvent(EventType.ADMIN_MAIL_IMPORTED, "operator", T0 + timedelta(seconds=i),
                           account=f"user{i % accounts}@example.test")
                for i in range(first, min(events, first + BATCH))])
    return time.perf_counter() - start


def first_page(audit: Path) -> tuple[float, int]:
    start = time.perf_counter()
    feed = AccessFeed(audit)
    feed.page("user42@example.test", limit=50)
    elapsed = time.perf_counter() - start
    scanned = feed.scanned_from_log
    feed.close()
    return elapsed, scanned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    home = args.dir or Path(tempfile.mkdtemp(prefix="feed-bench-"))
    audit = home / "control" / "audit"
    try:
        took = build(audit, args.events, args.accounts)
        print(f"log of {args.events} events built in {took:.1f} s")
        cold, scanned = first_page(audit)
        print(f"first page, no index file:   {cold:.2f} s ({scanned} events scanned)")
        warm, scanned = first_page(audit)
        print(f"first page after a restart:  {warm:.2f} s ({scanned} events scanned)")
        size = (home / "control" / feed_index.INDEX_FILE).stat().st_size
        print(f"index file: {size / 1e6:.1f} MB")
    finally:
        if args.dir is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
