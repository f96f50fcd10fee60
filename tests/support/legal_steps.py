"""Child process for the legal crash test: files a request, decides it and closes the
matter, stopping after every durable write (a transaction of the legal database, an
append to the audit log) to print ``WROTE <n> <what>`` and wait for a line on stdin,
so that the test can SIGKILL it at exactly that point between two writes.

    python legal_steps.py HOME REQUEST_JSON [four-eyes | matter-file]

With ``four-eyes`` the decision is proposed by lee and approved by ada in between;
``matter-file`` runs the matter file's steps instead (legal_file_steps.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from letterlock.app import open_app
from letterlock.audit.events import AuditEvent
from letterlock.audit.store import MerkleLog
from support.env import make_config

_count = 0
_lock = threading.Lock()


def _pause(what: str) -> None:
    """Blocking: say what was just written, then wait for the test to let us go on."""
    global _count
    with _lock:
        _count += 1
        sys.stdout.write(f"WROTE {_count} {what}\n")
        sys.stdout.flush()
        sys.stdin.readline()


def _watch_audit_appends() -> None:
    original = MerkleLog.append

    def append(self: MerkleLog, events: Sequence[AuditEvent]) -> list[int]:
        out = original(self, events)  # runs on an executor thread: blocking is fine
        _pause("audit " + ",".join(e.type.value for e in events))
        return out

    MerkleLog.append = append  # type: ignore[method-assign]


def _watch_legal_writes(db: Any) -> None:
    original = db.write

    async def write(fn: Callable[..., Any], **kwargs: Any) -> Any:
        out = await original(fn, **kwargs)
        await asyncio.to_thread(_pause, "legal-db")
        return out

    db.write = write


FOUR_EYES_ENV = {"LETTERLOCK_LEGAL_FOUR_EYES": "content,override,flagged"}


async def main(home: Path, request: dict[str, Any], four_eyes: bool = False) -> None:
    _watch_audit_appends()
    async with open_app(make_config(home, **(FOUR_EYES_ENV if four_eyes else {}))) as app:
        _watch_legal_writes(app.legal._store._db)
        matter = await app.legal.file(request, "counsel")
        sys.stdout.write(f"STEP filed {matter.id}\n")
        sys.stdout.flush()
        if four_eyes:
            await app.legal.decide(matter.id, "lee")
            sys.stdout.write("STEP proposed\n")
            sys.stdout.flush()
            await app.legal.approve(matter.id, "ada")
        else:
            await app.legal.decide(matter.id, "counsel")
        sys.stdout.write("STEP decided\n")
        sys.stdout.flush()
        await app.legal.close(matter.id, "counsel")
        sys.stdout.write("STEP closed\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[3:] == ["matter-file"]:  # the matter-file crash test's steps
        from support import legal_file_steps

        asyncio.run(legal_file_steps.main(Path(sys.argv[1]), json.loads(sys.argv[2])))
    else:
        asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2]),
                         sys.argv[3:] == ["four-eyes"]))
