"""The explicit repair of an audit log the writer refuses to open
(``letterlock log recover --reason ...``), recorded in the log as it is done.

The writer refuses a log whose ``head.json`` is missing, whose signed events were
edited, or that holds bytes after its signed events that no append of its own made
(see ``store``). Recovery never re-signs what a signed head covered unless those
events still hash to that head:

1. The base is the newest head that still verifies: ``head.json``, else the last one
   kept in ``heads.jsonl``, else the empty tree.
2. The events that base covers must hash to its root. If they do not, the log was
   edited and recovery refuses: re-signing would hide the edit. Restore
   ``events.jsonl`` from a backup (``letterlock log verify`` names what changed).
3. What follows them is unsigned. The operator chooses: ``keep`` signs it as it is
   (each line must be a record of this log, numbered on), ``set-aside`` moves it to
   ``set-aside/`` (kept, outside the log). Neither is chosen for them.
4. A new head is signed; the hash files are derived again from the events; and a
   ``log:tree:recovered`` event records the reason, what was found and what was done
   (the size of the base, events kept, bytes set aside and their SHA-256).

Stop the server first: recovery works on the files directly.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from letterlock.audit import tail
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.heads import (
    last_archived_head,
    read_head_file,
    sign_head,
    write_head,
    write_pending,
)
from letterlock.audit.keys import load_private_key, load_public_key, public_bytes
from letterlock.audit.layout import (
    EVENTS_FILE,
    HEAD_FILE,
    HEADS_FILE,
    LEAVES_FILE,
    LOCK_FILE,
    level_file,
)
from letterlock.audit.store import MerkleLog
from letterlock.audit.verify import EMPTY_ROOT, SignedHead, VerificationError, check_head
from letterlock.errors import InvalidInput, LetterlockError, StorageError


class TailChoice(enum.StrEnum):
    KEEP = "keep"
    SET_ASIDE = "set-aside"


@dataclass(frozen=True)
class Recovery:
    """What ``recover_log`` found and did."""

    found: str
    """Why the writer refused the log (its message)."""
    base_size: int
    base_source: str
    """Where the base head came from: ``head.json``, ``heads.jsonl`` or ``none``."""
    kept: int
    """Unsigned events signed as they were (``keep``)."""
    set_aside: Path | None
    set_aside_bytes: int
    event_index: int
    """The index of the ``log:tree:recovered`` event."""


def refusal(directory: Path) -> str | None:
    """Why the writer refuses the log under ``directory``, or None if it opens."""
    try:
        MerkleLog(directory).close()
    except StorageError as exc:
        return str(exc)
    return None


def recover_log(directory: Path, *, reason: str, actor: str,
                tail_choice: TailChoice | None,
                clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Recovery | None:
    """Repair the log as described above; None when it opens as it is (nothing done).

    Raises InvalidInput when the reason is empty or unsigned bytes need a
    ``tail_choice`` (or cannot be kept), and StorageError when signed events were
    changed."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give the reason for the recovery (--reason): it is recorded")
    found = refusal(directory)
    if found is None:
        return None
    public = load_public_key(directory)
    key = load_private_key(directory)
    if public_bytes(key) != public:
        raise StorageError("log-key.pem and log-key.pub do not belong together")
    lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        base, source = _base(directory, public)
        kept, aside, moved = _repair(directory, base, tail_choice)
        now = clock()
        size = base.tree_size + kept
        lines = (directory / EVENTS_FILE).read_bytes().split(b"\n")[:size]
        head = sign_head(key, public, size, tail.root_after([], lines), now)
        # The pending head is replaced too, so a stale one can explain nothing later.
        write_pending(directory, head)
        write_head(directory, head, archive=True)
        for name in [LEAVES_FILE, *(level_file(k) for k in range(1, 64))]:
            (directory / name).unlink(missing_ok=True)  # derived: made again on open
    finally:
        os.close(lock_fd)
    details = [("reason", reason), ("found", found), ("base_size", str(base.tree_size)),
               ("base_source", source), ("kept", str(kept))]
    if aside is not None:
        details += [("set_aside", aside.name), ("set_aside_bytes", str(len(moved))),
                    ("set_aside_sha256", hashlib.sha256(moved).hexdigest())]
    with MerkleLog(directory, clock=clock) as log:
        index = log.append([AuditEvent(EventType.LOG_RECOVERED, actor, now,
                                       details=tuple(details))])[0]
    return Recovery(found, base.tree_size, source, kept, aside, len(moved), index)


def _base(directory: Path, public: bytes) -> tuple[SignedHead, str]:
    """The largest signed head that still verifies, and where it was found."""
    found: list[tuple[SignedHead, str]] = []
    for source, read in ((HEAD_FILE, read_head_file), (HEADS_FILE, last_archived_head)):
        with contextlib.suppress(LetterlockError, VerificationError):
            head = read(directory / source)
            if head is not None:
                check_head(head, public)
                found.append((head, source))
    if not found:
        return SignedHead("", public, 0, EMPTY_ROOT, "", b""), "none"
    return max(found, key=lambda pair: pair[0].tree_size)


def _repair(directory: Path, base: SignedHead,
            choice: TailChoice | None) -> tuple[int, Path | None, bytes]:
    """Check the signed events against ``base`` and deal with what follows them;
    returns the events kept, and the file and bytes set aside."""
    fd = os.open(directory / EVENTS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        *lines, torn = data.split(b"\n")
        signed = lines[:base.tree_size]
        if len(signed) < base.tree_size or tail.root_after([], signed) != base.root_hash:
            raise StorageError(
                f"the events the signed head of size {base.tree_size} covers no longer "
                "hash to it: they were changed, and recovery will not re-sign them; "
                "restore events.jsonl from a backup (`letterlock log verify` names "
                "what changed)")
        signed_end = sum(len(line) + 1 for line in signed)
        rest = lines[base.tree_size:]
        if signed_end == len(data):
            return 0, None, b""
        if choice is None:
            raise InvalidInput(
                f"{len(data) - signed_end} bytes follow the events the last signed head "
                f"(size {base.tree_size}) covers: choose --keep-tail to sign them as "
                "they are, or --set-aside-tail to move them out of the log")
        if choice is TailChoice.KEEP:
            if torn or not tail.well_formed(rest, base.tree_size):
                raise InvalidInput(
                    "what follows the signed events is not a run of records of this "
                    "log, numbered on: it cannot be kept; use --set-aside-tail")
            return len(rest), None, b""
        path, moved = tail.set_aside(directory, fd, signed_end, base.tree_size, "recovery")
        return 0, path, moved
    finally:
        os.close(fd)
