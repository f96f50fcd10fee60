"""The operator's private half of events under a non-disclosure order: one file per
commitment in the log's ``sealed/`` directory, holding the event, its salt and when
the order ends. The log itself holds only the salted commitment; revealing an event
publishes what its file holds and removes the file (``MerkleLog.reveal``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from letterlock.audit import records
from letterlock.audit.events import AuditEvent
from letterlock.audit.verify import canonical_json


@dataclass(frozen=True)
class SealedEntry:
    """What the operator keeps, privately, to reveal commitment ``index`` later."""

    index: int
    salt: bytes
    content: str
    sealed_until: datetime | None  # None: indefinite, revealed only when lifted

    @property
    def event(self) -> AuditEvent:
        return records.event_from_json(json.loads(self.content))


def read_all(directory: Path) -> list[SealedEntry]:
    """Every commitment not yet revealed, by log index."""
    out = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text(encoding="ascii"))
        until = doc.get("sealed_until")
        out.append(SealedEntry(index=int(doc["index"]), salt=bytes.fromhex(doc["salt"]),
                               content=str(doc["content"]),
                               sealed_until=records.parse_time(until) if until else None))
    return sorted(out, key=lambda e: e.index)


def write(directory: Path, entry: SealedEntry, *, atomic: bool = False) -> None:
    """Write ``entry``'s file, fsynced. ``atomic``: replacing an existing file (its
    salt must never be lost), so written beside it and renamed over it."""
    final = directory / f"{entry.index}.json"
    path = final.with_suffix(".tmp") if atomic else final
    data = canonical_json({
        "index": entry.index,
        "salt": entry.salt.hex(),
        "content": entry.content,
        "sealed_until": (records.format_time(entry.sealed_until)
                         if entry.sealed_until else None),
    })
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if atomic:
        os.replace(path, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
