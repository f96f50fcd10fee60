"""The durable Merkle log: files under one directory (see ``layout``), append-only.

An append signs the head of the tree it is about to make and keeps it as the pending
head, then writes and fsyncs the events, then the hash files, then publishes that head
(``heads``). Opening the log checks it against its signed head and refuses (a
StorageError naming ``letterlock log verify`` and ``letterlock log recover``) when:

* ``head.json`` is missing (only ``init_log`` makes a log without one);
* the last signed event no longer hashes to the leaf recorded when it was appended
  (an edit that moved bytes, a whitespace change included);
* there are bytes after the signed events that the pending head does not explain
  (an event appended by anyone but this server's append).

Nothing found in the file is ever signed: events after ``head.json`` are taken in
only when they are exactly those the pending head (signed before they were written)
covers. What a crash leaves torn, short of a pending head's events, was never
acknowledged: it is moved to ``set-aside/`` (kept, not deleted) and the log goes on
from its head. The explicit repair is :mod:`letterlock.audit.recovery`. Roots and
proofs are computed by ``tree`` from the stored subtree hashes. Events under a
non-disclosure order go in as salted commitments, revealed later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from letterlock.audit import records, sealed_files, tail, tree
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.heads import (
    last_archived_head,
    read_head_file,
    read_pending,
    sign_head,
    write_head,
    write_pending,
)
from letterlock.audit.keys import (
    create_log_key,
    has_log_key,
    load_private_key,
    load_public_key,
    public_bytes,
)
from letterlock.audit.layout import (
    EVENTS_FILE,
    HEAD_FILE,
    HEADS_FILE,
    LOCK_FILE,
    SEALED_DIR,
    HashFiles,
)
from letterlock.audit.sealed_files import SealedEntry
from letterlock.audit.verify import (
    CONSISTENCY_FORMAT,
    EMPTY_ROOT,
    INCLUSION_FORMAT,
    SignedHead,
    VerificationError,
    canonical_json,
    check_head,
    commitment_hash,
    leaf_hash,
    log_id_for,
)
from letterlock.errors import InvalidInput, NotFound, NotInitialised, StorageError

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
SEE = "run `letterlock log verify`, then see `letterlock log recover --help`"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def init_log(directory: Path, *, clock: Clock = _utcnow) -> bytes:
    """Create the log key and an empty signed log; returns the raw public key."""
    public = create_log_key(directory)
    MerkleLog(directory, clock=clock, create=True).close()
    return public


class MerkleLog:
    """The append-only audit log. Blocking I/O: call it from a thread (see
    :class:`letterlock.audit.sink.AuditLog` for the asyncio face).

    Thread-safe; several processes may append (they serialise on ``append.lock``).
    ``writable=False`` opens a read-only view at the latest signed head.
    """

    def __init__(
        self,
        directory: Path,
        *,
        writable: bool = True,
        clock: Clock = _utcnow,
        archive_every: timedelta = timedelta(minutes=1),
        create: bool = False,
    ) -> None:
        """``create``: a new, empty log may be given its first head (``init_log``);
        otherwise a log without ``head.json`` is refused."""
        self.directory = directory
        self._create = create
        self._writable = writable
        self._clock = clock
        self._archive_every = archive_every
        self._lock = threading.RLock()
        self._size = 0
        self._stack: list[tuple[int, bytes]] = []  # complete subtrees, left to right
        self._events_end = 0
        self._last_logged = datetime.min.replace(tzinfo=UTC)
        self._last_archived: datetime | None = None
        self._head: SignedHead | None = None
        if not has_log_key(directory) and not (directory / "log-key.pub").exists():
            raise NotInitialised(f"no audit log in {directory}")
        self._public = load_public_key(directory)
        self._key = load_private_key(directory) if writable else None
        if self._key is not None and public_bytes(self._key) != self._public:
            raise StorageError("log-key.pem and log-key.pub do not belong together")
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        try:
            self._events_fd = os.open(directory / EVENTS_FILE, flags, 0o644)
        except FileNotFoundError as exc:
            raise NotInitialised(f"no audit log in {directory}") from exc
        self._hashes = HashFiles(directory, writable)
        self._lock_fd = (
            os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644) if writable else -1
        )
        if writable:
            (directory / SEALED_DIR).mkdir(mode=0o700, exist_ok=True)
            with self._lock, self._process_lock():
                self._load()
        else:
            self.refresh()

    # --- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._hashes.close()
            if self._events_fd >= 0:
                os.close(self._events_fd)
                self._events_fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> MerkleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # --- public reads ------------------------------------------------------------

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def log_id(self) -> str:
        return log_id_for(self._public)

    @property
    def size(self) -> int:
        return self._size

    def head(self) -> SignedHead:
        with self._lock:
            if self._head is None:
                raise NotInitialised(f"the audit log in {self.directory} has no signed head")
            return self._head

    def refresh(self) -> SignedHead:
        """Read-only views: move to the newest signed head on disk."""
        with self._lock:
            head = read_head_file(self.directory / HEAD_FILE)
            if head is None:
                raise NotInitialised(f"the audit log in {self.directory} has no signed head")
            check_head(head, self._public)
            self._head = head
            self._size = head.tree_size
            self._events_end = self._hashes.leaf_end(head.tree_size - 1) if head.tree_size else 0
            return head

    def leaf(self, index: int) -> bytes:
        """The exact bytes of leaf ``index`` (without the newline)."""
        if not 0 <= index < self._size:
            raise NotFound(f"no audit event {index} (the log has {self._size})")
        start = self._hashes.leaf_end(index - 1) if index else 0
        end = self._hashes.leaf_end(index)
        data = os.pread(self._events_fd, end - start, start)
        if len(data) != end - start or not data.endswith(b"\n"):
            raise StorageError(f"audit event {index} cannot be read back intact")
        return data[:-1]

    def record(self, index: int) -> records.LogRecord:
        return records.decode(self.leaf(index))

    def iter_leaves(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Leaves in order, read sequentially (for scans such as the access feed)."""
        stop = self._size if stop is None else min(stop, self._size)
        if start >= stop:
            return
        offset = self._hashes.leaf_end(start - 1) if start else 0
        end = self._hashes.leaf_end(stop - 1)
        index = start
        pending = b""
        while offset < end and index < stop:
            chunk = os.pread(self._events_fd, min(1 << 20, end - offset), offset)
            if not chunk:
                raise StorageError("audit event file ended early")
            offset += len(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield index, line
                index += 1

    def iter_records(self, start: int = 0, stop: int | None = None) -> Iterator[records.LogRecord]:
        for _, leaf in self.iter_leaves(start, stop):
            yield records.decode(leaf)

    # --- hashes and proofs (RFC 9162, 2.1) ---------------------------------------

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi) for a range that occurs in the RFC 9162 recursion."""
        return tree.subtree_hash(self._hashes.node, lo, hi)

    def root(self, size: int | None = None) -> bytes:
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise NotFound(f"the log has no tree of size {size}")
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size if size is None else size
        if not 0 <= index < size <= self._size:
            raise NotFound(f"no audit event {index} in a tree of size {size}")
        return tree.inclusion_path(self._hashes.node, index, 0, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self._size if size2 is None else size2
        if not 0 <= size1 <= size2 <= self._size:
            raise NotFound(f"no consistency proof from size {size1} to {size2}")
        if size1 == 0 or size1 == size2:
            return []
        return tree.consistency_path(self._hashes.node, size1, 0, size2, True)

    def inclusion_bundle(self, index: int) -> dict[str, Any]:
        """What ``letterlock log proof --json`` prints and the verifier reads."""
        with self._lock:
            head = self.head()
            leaf = self.leaf(index)
            doc: dict[str, Any] = {
                "format": INCLUSION_FORMAT,
                "head": head.to_json(),
                "leaf_index": index,
                "leaf": leaf.decode("utf-8"),
                "path": [h.hex() for h in self.inclusion_proof(index, head.tree_size)],
            }
            record = records.decode(leaf)
            if record.kind == "reveal" and record.reveals is not None:
                c = record.reveals
                doc["commitment"] = {
                    "leaf_index": c,
                    "leaf": self.leaf(c).decode("utf-8"),
                    "path": [h.hex() for h in self.inclusion_proof(c, head.tree_size)],
                }
            return doc

    def consistency_bundle(self, first: SignedHead) -> dict[str, Any]:
        with self._lock:
            second = self.head()
            if first.tree_size > second.tree_size:
                raise InvalidInput(
                    f"the saved head (size {first.tree_size}) is newer than this log "
                    f"(size {second.tree_size})"
                )
            return {
                "format": CONSISTENCY_FORMAT,
                "first": first.to_json(),
                "second": second.to_json(),
                "path": [
                    h.hex() for h in self.consistency_proof(first.tree_size, second.tree_size)
                ],
            }

    # --- appends -------------------------------------------------------------------

    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append events durably (one fsync group for all); returns their indices.

        Events under a non-disclosure order go in as salted commitments; their salt
        and content are kept under ``sealed/`` for :meth:`reveal`.
        """
        if not events:
            return []
        self._require_writable()
        with self._lock, self._process_lock():
            self._catch_up()
            now = self._now()
            first = self._size
            leaves: list[bytes] = []
            sealed: list[SealedEntry] = []
            for offset, event in enumerate(events):
                index = first + offset
                if records.is_sealed(event):
                    content = canonical_json(records.event_to_json(event)).decode("ascii")
                    salt = os.urandom(32)
                    digest = commitment_hash(salt, content.encode("ascii"))
                    leaves.append(records.encode_commitment(index, now, digest))
                    sealed.append(SealedEntry(index, salt, content, event.sealed_until))
                else:
                    leaves.append(records.encode_event(index, now, event))
            # the salt must be safe before the commitment exists: without it the
            # commitment could never be opened
            for entry in sealed:
                self._write_sealed(entry)
            self._append_leaves(leaves, now)
            return list(range(first, first + len(leaves)))

    def sealed_entries(self) -> list[SealedEntry]:
        """Commitments not yet revealed, with what is needed to reveal them."""
        return sealed_files.read_all(self.directory / SEALED_DIR)

    def events_since(self, start: int) -> list[AuditEvent]:
        """Events recorded at ``start`` or later, including those under an order (from
        ``sealed/`` or from their reveal): what a crashed writer looks for."""
        with self._lock:
            if self._writable:
                with self._process_lock():
                    self._catch_up()
            else:
                self.refresh()
            sealed_dir = self.directory / SEALED_DIR
            seen: set[int] = set()  # commitments already counted
            out: list[AuditEvent] = []
            for rec in self.iter_records(max(0, start)):
                if rec.kind == "event" and rec.event is not None:
                    out.append(rec.event)
                elif rec.kind == "commitment":
                    path = sealed_dir / f"{rec.index}.json"
                    with contextlib.suppress(FileNotFoundError):
                        doc = json.loads(path.read_text(encoding="ascii"))
                        out.append(records.event_from_json(json.loads(str(doc["content"]))))
                        seen.add(rec.index)
                elif rec.kind == "reveal" and rec.reveals is not None:
                    event = rec.revealed_event
                    if event is not None and rec.reveals >= start and rec.reveals not in seen:
                        out.append(event)
            return out

    def reveal(self, index: int, actor: str, at: datetime | None = None) -> int:
        """Publish commitment ``index``'s content and salt; returns the reveal's index."""
        self._require_writable()
        with self._lock, self._process_lock():
            self._catch_up()
            path = self.directory / SEALED_DIR / f"{index}.json"
            try:
                doc = json.loads(path.read_text(encoding="ascii"))
            except FileNotFoundError as exc:
                raise NotFound(f"audit event {index} is not an unrevealed commitment") from exc
            content = str(doc["content"])
            original = records.event_from_json(json.loads(content))
            now = self._now()
            event = AuditEvent(
                type=EventType.LOG_COMMITMENT_REVEALED,
                actor=actor,
                at=at or now,
                account=original.account,
                matter=original.matter,
                details=(("reveals", str(index)),),
            )
            leaf = records.encode_reveal(
                self._size, now, event, index, bytes.fromhex(doc["salt"]), content
            )
            self._append_leaves([leaf], now)
            path.unlink()
            return self._size - 1

    def reveal_due(self, actor: str, now: datetime | None = None) -> list[int]:
        """Reveal every commitment whose order has expired by ``now``."""
        moment = now or self._clock()
        due = [
            e.index
            for e in self.sealed_entries()
            if e.sealed_until is not None and e.sealed_until <= moment
        ]
        return [self.reveal(i, actor, moment) for i in due]

    def reseal(self, indexes: Collection[int], until: datetime | None) -> int:
        """The order over commitments ``indexes`` was extended: they are revealed at
        ``until`` now (None: only when lifted), not at the old date. Returns how many
        were changed."""
        self._require_writable()
        wanted = set(indexes)
        changed = 0
        with self._lock, self._process_lock():
            for entry in self.sealed_entries():
                if entry.index in wanted and entry.sealed_until != until:
                    self._write_sealed(SealedEntry(entry.index, entry.salt, entry.content,
                                                   until), atomic=True)
                    changed += 1
        return changed

    # --- internals -------------------------------------------------------------------

    def _require_writable(self) -> None:
        if not self._writable or self._key is None:
            raise StorageError("this view of the audit log is read-only")

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        # logged_at never goes backwards, so it also witnesses the order of events
        now = max(now, self._last_logged)
        self._last_logged = now
        return now

    def _write_sealed(self, entry: SealedEntry, *, atomic: bool = False) -> None:
        sealed_files.write(self.directory / SEALED_DIR, entry, atomic=atomic)

    def _append_leaves(self, leaves: Sequence[bytes], now: datetime) -> None:
        data = b"".join(leaf + b"\n" for leaf in leaves)
        try:
            head = self._stage(leaves, now)
            written = os.pwrite(self._events_fd, data, self._events_end)
            if written != len(data):
                raise OSError("short write")
            os.fsync(self._events_fd)
            self._add_hashes(leaves)
            self._publish(head, now)
        except OSError as exc:
            # leave memory consistent with the signed state before reporting
            with contextlib.suppress(OSError, StorageError):
                self._load()
            raise StorageError(f"audit log append failed: {exc}") from exc

    def _add_hashes(self, leaves: Sequence[bytes]) -> None:
        """Extend the hash files and the in-memory right edge by ``leaves``."""
        first = self._size
        writes: dict[int, list[bytes]] = {0: []}
        end = self._events_end
        for leaf in leaves:
            end += len(leaf) + 1
            digest = leaf_hash(leaf)
            writes[0].append(digest + end.to_bytes(8, "big"))
            for level, parent in tree.push_leaf(self._stack, digest):
                writes.setdefault(level, []).append(parent)
        for level, entries in writes.items():
            self._hashes.write(level, first >> level, entries)
        self._hashes.sync(list(writes))
        self._size = first + len(leaves)
        self._events_end = end

    def _stage(self, leaves: Sequence[bytes], now: datetime) -> SignedHead:
        """Sign the head of the tree ``leaves`` will make and keep it as pending."""
        assert self._key is not None
        head = sign_head(self._key, self._public, self._size + len(leaves),
                         tail.root_after(self._stack, leaves), now)
        write_pending(self.directory, head)
        return head

    def _publish(self, head: SignedHead, now: datetime) -> None:
        """Make ``head`` (of the tree as it now is) the latest signed head."""
        archive = self._last_archived is None or now - self._last_archived >= self._archive_every
        write_head(self.directory, head, archive=archive)
        if archive:
            self._last_archived = now
        self._head = head

    def _catch_up(self) -> None:
        """Another process may have appended since we last looked."""
        if os.fstat(self._events_fd).st_size != self._events_end:
            self._load()

    def _load(self) -> None:
        """Bring memory and hash files in line with the events and the last head."""
        head = read_head_file(self.directory / HEAD_FILE)
        if head is None and not (self._create and self._never_written()):
            raise StorageError(
                f"the audit log's signed head ({HEAD_FILE}) is missing: the log cannot "
                f"be trusted as it is, and is not re-signed; {SEE}")
        if head is not None:
            try:
                check_head(head, self._public)
            except VerificationError as exc:
                raise StorageError(f"the audit log's signed head is invalid: {exc}") from exc
        size = head.tree_size if head else 0
        archived = last_archived_head(self.directory / HEADS_FILE)
        self._last_archived = records.parse_time(archived.timestamp) if archived else None
        if head is not None:
            self._last_logged = max(self._last_logged, records.parse_time(head.timestamp))
        root = head.root_hash if head else EMPTY_ROOT
        if not self._hashes_match(size, root):
            # damaged or missing hash files: derive them again from the events
            self._rebuild_hashes(size)
            if self._size < size or not self._hashes_match(size, root):
                raise StorageError(
                    f"the audit log no longer matches its signed head (size {size}); "
                    "run `letterlock log verify`"
                )
        self._hashes.truncate_to(size)
        self._size = size
        self._events_end = self._hashes.leaf_end(size - 1) if size else 0
        self._stack = tree.stack_for_size(self._hashes.node, size)
        if self._events_end > os.fstat(self._events_fd).st_size:
            raise StorageError(
                f"the audit log holds fewer events than its signed head ({size}); "
                "run `letterlock log verify`"
            )
        self._check_last_leaf()
        self._head = head
        if os.fstat(self._events_fd).st_size > self._events_end:
            self._take_tail()
        if self._head is None:  # a new log (init_log): its first, empty head
            assert self._key is not None
            now = self._now()
            self._publish(sign_head(self._key, self._public, 0, EMPTY_ROOT, now), now)
        self._create = False

    def _never_written(self) -> bool:
        return (os.fstat(self._events_fd).st_size == 0
                and not (self.directory / HEADS_FILE).exists())

    def _check_last_leaf(self) -> None:
        """The last signed event is still where and what it was when appended: any
        edit that moved bytes (inserted or removed anywhere before it) shows here."""
        if not self._size:
            return
        index = self._size - 1
        start = self._hashes.leaf_end(index - 1) if index else 0
        data = os.pread(self._events_fd, self._events_end - start, start)
        if not data.endswith(b"\n") or leaf_hash(data[:-1]) != self._hashes.node(0, index):
            raise StorageError(
                f"the audit log's events were changed after they were signed (event "
                f"{index}, the last the signed head covers, is no longer as appended); "
                f"nothing was truncated or re-signed; {SEE}")

    def _take_tail(self) -> None:
        """Bytes after the signed events. With a pending head beyond the signed one,
        an append crashed before publishing it: its events are taken in when they
        are exactly what that head covers, and set aside otherwise (torn or zeroed by
        the crash: never acknowledged, so never signed). Without one, nothing this
        server did explains them: refused."""
        size = os.fstat(self._events_fd).st_size
        data = os.pread(self._events_fd, size - self._events_end, self._events_end)
        pending = read_pending(self.directory, self._public)
        if pending is None or pending.tree_size <= self._size:
            raise StorageError(
                f"the audit log holds {len(data)} bytes after its last signed head "
                f"(size {self._size}) that no append of this server made: they are not "
                f"signed and not removed; {SEE}")
        *leaves, torn = data.split(b"\n")
        if (not torn and len(leaves) == pending.tree_size - self._size
                and tail.well_formed(leaves, self._size)
                and tail.root_after(self._stack, leaves) == pending.root_hash):
            self._add_hashes(leaves)
            self._publish(pending, self._now())
            return
        path, _ = tail.set_aside(self.directory, self._events_fd, self._events_end,
                                 self._size, "unfinished-append")
        log.warning("audit log: %d bytes of an append that never finished moved to %s",
                    len(data), path)

    def _hashes_match(self, size: int, root: bytes) -> bool:
        if self._hashes.entries(0) < size:
            return False
        try:
            return self.subtree_hash(0, size) == root
        except StorageError:
            return False

    def _rebuild_hashes(self, limit: int) -> None:
        """Recompute the hash files from the first ``limit`` events."""
        self._hashes.truncate_to(0)
        self._size = 0
        self._events_end = 0
        self._stack = []
        total = os.fstat(self._events_fd).st_size
        pending = b""
        pos = 0
        while pos < total and self._size < limit:
            chunk = os.pread(self._events_fd, min(1 << 22, total - pos), pos)
            pos += len(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            self._add_hashes(lines[: limit - self._size])
