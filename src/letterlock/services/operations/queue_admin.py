"""The operator's view of the outbound queue and hand on it (`letterlock queue list |
show | retry | hold | delete`), whether or not the server runs.

The queue is its spool files (services/mail/outbound.py: one sealed envelope and one
sealed message per entry, under the sender's region). A change is made to those
files, durably, and then told to a running server over the peer bus
(``outbound.NEWS``), whose queue takes it at once; if that news is lost, the server
still reads the envelope again before each attempt, so a held or deleted entry is
never tried. Nothing here opens a message: an operator sees envelopes, states and
the last answer of each receiving server, never content.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from letterlock.errors import InvalidInput, NotFound
from letterlock.services.mail.outbound import (
    ENTRY_ID,
    NEWS,
    QueueEntry,
    Spool,
    load_queue_key,
)
from letterlock.services.peers import PeerBus

MIN_PREFIX = 6
"""Shortest id prefix accepted for an entry (ids are 24 hex digits)."""


class QueueAdmin:
    """Blocking (files and sealing): for the command line, or a worker thread."""

    def __init__(self, home: Path, run_dir: Path) -> None:
        self._spool = Spool(home, load_queue_key(home / "control"))
        self._run_dir = run_dir

    def entries(self) -> list[QueueEntry]:
        """Every queued message, oldest first."""
        return sorted(self._spool.load_all(), key=lambda e: e.created)

    def find(self, prefix: str) -> QueueEntry:
        """The entry whose id starts with ``prefix``. Raises InvalidInput for a prefix
        too short or matching several, NotFound for none."""
        prefix = prefix.strip().lower()
        if len(prefix) < MIN_PREFIX or not ENTRY_ID.fullmatch(prefix.ljust(24, "0")):
            raise InvalidInput(f"queue id {prefix!r}: give at least {MIN_PREFIX} of its "
                               "hex digits")
        found = [e for e in self._spool.load_all() if e.id.startswith(prefix)]
        if not found:
            raise NotFound(f"no queued message {prefix}")
        if len(found) > 1:
            raise InvalidInput(f"queue id {prefix} is ambiguous: "
                               + ", ".join(e.id for e in found))
        return found[0]

    def message_bytes(self, entry: QueueEntry) -> int:
        return self._spool.message_bytes(entry)

    def hold(self, entry: QueueEntry) -> QueueEntry:
        """No attempt until released by :meth:`retry`."""
        held = replace(entry, held=True)
        self._spool.write_env(held)
        return held

    def retry(self, entry: QueueEntry, now: datetime | None = None) -> QueueEntry:
        """Release a held entry and try it now."""
        due = replace(entry, held=False, next_attempt=now or datetime.now(UTC))
        self._spool.write_env(due)
        return due

    def delete(self, entry: QueueEntry) -> None:
        """Remove the entry and its message; no bounce is sent."""
        self._spool.remove(entry)

    def tell_server(self, changed: list[QueueEntry]) -> None:
        """Tell a running server's queue which entries changed (a no-op when none
        runs)."""
        if not changed:
            return
        bus = PeerBus(self._run_dir)
        try:
            bus.broadcast(NEWS, " ".join(e.id for e in changed).encode("ascii"))
        finally:
            bus.close()
