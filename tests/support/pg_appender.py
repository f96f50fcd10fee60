"""Child process for the PostgreSQL cross-process tests: appends ``count`` messages to
one mailbox through its own PostgresCellStore, one transaction each, and prints one
``UID <uid> <modseq>`` line per acknowledged append.

    python -m support.pg_appender URL MAILBOX_ID COUNT TAG
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from letterlock.storage.models import NewMessage
from letterlock.storage.postgres import PostgresCellStore


async def main(url: str, mailbox_id: int, count: int, tag: str) -> None:
    store = PostgresCellStore(url)
    try:
        print("READY", flush=True)
        sys.stdin.readline()  # the parent says go, so both processes start together
        for i in range(count):
            [done] = await store.append_messages([NewMessage(
                mailbox_id, f"{tag}{i:06d}", 10, datetime.now(UTC), frozenset(), b"s")])
            print(f"UID {done.uid} {done.modseq}", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
