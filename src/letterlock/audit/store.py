"""The durable Merkle log: files under one directory, append-only.

Layout (the app uses ``HOME/control/audit/``)::

    events.jsonl     one canonical record per line: the leaves, the only source of truth
    leaves.idx       per leaf: 32-byte leaf hash + 8-byte end offset in events.jsonl
    level-KK.hash    per complete, aligned subtree of 2**KK leaves: its 32-byte hash
    head.json        the latest signed tree head (replaced atomically)
    heads.jsonl      signed heads kept for history (at most one a minute by default)
    sealed/N.json    salt and content of commitment N until it is revealed (0600)
    log-key.pem/.pub the operator's Ed25519 log key
    append.lock      serialises writers across processes (flock)

The hash files are derived from ``events.jsonl`` and let proofs read O(log n) stored
nodes instead of rehashing the log. An append writes and fsyncs the events, then the
hash files, then signs a head: after a crash, everything beyond the last signed head
is re-derived from the events, and a torn last line (never acknowledged) is dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from letterlock.audit import records
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.keys import (
    create_log_key,
    has_log_key,
    load_private_key,
    load_public_key,
    public_bytes,
)
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
    node_hash,
)
from letterlock.errors import InvalidInput, NotFound, NotInitialised, StorageError

EVENTS_FILE = "events.jsonl"
LEAVES_FILE = "leaves.idx"
HEAD_FILE = "head.json"
HEADS_FILE = "heads.jsonl"
SEALED_DIR = "sealed"
LOCK_FILE = "append.lock"
LEAF_STRIDE = 40
NODE_STRIDE = 32

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def level_file(level: int) -> str:
    return f"level-{level:02d}.hash"


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


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


def init_log(directory: Path, *, clock: Clock = _utcnow) -> bytes:
    """Create the log key and an empty signed log; returns the raw public key."""
    public = create_log_key(directory)
    MerkleLog(directory, clock=clock).close()
    return public


class _HashFiles:
    """Positional access to ``leaves.idx`` and the ``level-KK.hash`` files."""

    def __init__(self, directory: Path, writable: bool) -> None:
        self._dir = directory
        self._writable = writable
        self._fds: dict[int, int] = {}

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            name = LEAVES_FILE if level == 0 else level_file(level)
            flags = os.O_RDWR | os.O_CREAT if self._writable else os.O_RDONLY
            try:
                fd = os.open(self._dir / name, flags, 0o644)
            except FileNotFoundError as exc:
                raise StorageError(f"audit log hash file {name} is missing") from exc
            self._fds[level] = fd
        return fd

    def _read(self, level: int, offset: int, length: int) -> bytes:
        data = os.pread(self._fd(level), length, offset)
        if len(data) != length:
            raise StorageError(f"audit log hash file for level {level} is too short")
        return data

    def node(self, level: int, position: int) -> bytes:
        stride = LEAF_STRIDE if level == 0 else NODE_STRIDE
        return self._read(level, position * stride, 32)

    def leaf_end(self, position: int) -> int:
        return int.from_bytes(self._read(0, position * LEAF_STRIDE + 32, 8), "big")

    def write(self, level: int, first: int, entries: Sequence[bytes]) -> None:
        stride = LEAF_STRIDE if level == 0 else NODE_STRIDE
        data = b"".join(entries)
        os.pwrite(self._fd(level), data, first * stride)

    def sync(self, levels: Sequence[int]) -> None:
        for level in levels:
            os.fsync(self._fd(level))

    def entries(self, level: int) -> int:
        stride = LEAF_STRIDE if level == 0 else NODE_STRIDE
        name = LEAVES_FILE if level == 0 else level_file(level)
        try:
            return (self._dir / name).stat().st_size // stride
        except FileNotFoundError:
            return 0

    def truncate_to(self, size: int) -> None:
        """Cut every file to what a tree of ``size`` leaves holds."""
        os.ftruncate(self._fd(0), size * LEAF_STRIDE)
        level = 1
        while (self._dir / level_file(level)).exists():
            os.ftruncate(self._fd(level), (size >> level) * NODE_STRIDE)
            level += 1

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


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
    ) -> None:
        self.directory = directory
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
        self._hashes = _HashFiles(directory, writable)
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
        n = hi - lo
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self._hashes.node(n.bit_length() - 1, lo // n)
        k = split_point(n)
        return node_hash(self.subtree_hash(lo, lo + k), self.subtree_hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise NotFound(f"the log has no tree of size {size}")
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size if size is None else size
        if not 0 <= index < size <= self._size:
            raise NotFound(f"no audit event {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = split_point(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.subtree_hash(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.subtree_hash(lo, lo + k)]

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self._size if size2 is None else size2
        if not 0 <= size1 <= size2 <= self._size:
            raise NotFound(f"no consistency proof from size {size1} to {size2}")
        if size1 == 0 or size1 == size2:
            return []
        return self._subproof(size1, 0, size2, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self.subtree_hash(lo, hi)]
        k = split_point(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, whole), self.subtree_hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self.subtree_hash(lo, lo + k)]

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
        out = []
        for path in sorted((self.directory / SEALED_DIR).glob("*.json")):
            doc = json.loads(path.read_text(encoding="ascii"))
            until = doc.get("sealed_until")
            out.append(
                SealedEntry(
                    index=int(doc["index"]),
                    salt=bytes.fromhex(doc["salt"]),
                    content=str(doc["content"]),
                    sealed_until=records.parse_time(until) if until else None,
                )
            )
        return sorted(out, key=lambda e: e.index)

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

    def _write_sealed(self, entry: SealedEntry) -> None:
        path = self.directory / SEALED_DIR / f"{entry.index}.json"
        data = canonical_json(
            {
                "index": entry.index,
                "salt": entry.salt.hex(),
                "content": entry.content,
                "sealed_until": records.format_time(entry.sealed_until)
                if entry.sealed_until
                else None,
            }
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append_leaves(self, leaves: Sequence[bytes], now: datetime) -> None:
        data = b"".join(leaf + b"\n" for leaf in leaves)
        try:
            written = os.pwrite(self._events_fd, data, self._events_end)
            if written != len(data):
                raise OSError("short write")
            os.fsync(self._events_fd)
            self._add_hashes(leaves)
            self._sign_head(now)
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
            self._stack.append((0, digest))
            while len(self._stack) >= 2 and self._stack[-1][0] == self._stack[-2][0]:
                level, right = self._stack.pop()
                _, left = self._stack.pop()
                parent = node_hash(left, right)
                self._stack.append((level + 1, parent))
                writes.setdefault(level + 1, []).append(parent)
        for level, entries in writes.items():
            self._hashes.write(level, first >> level, entries)
        self._hashes.sync(list(writes))
        self._size = first + len(leaves)
        self._events_end = end

    def _stack_root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc

    def _sign_head(self, now: datetime) -> None:
        assert self._key is not None
        unsigned = SignedHead(
            log_id=self.log_id,
            public_key=self._public,
            tree_size=self._size,
            root_hash=self._stack_root(),
            timestamp=records.format_time(now),
            signature=b"",
        )
        signature = self._key.sign(canonical_json(unsigned.signed_fields()))
        head = dataclasses.replace(unsigned, signature=signature)
        text = canonical_json(head.to_json())
        tmp = self.directory / (HEAD_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        # No directory fsync needed: a lost rename only means re-signing the same
        # root after the crash, from events that are already durable.
        os.replace(tmp, self.directory / HEAD_FILE)
        if self._last_archived is None or now - self._last_archived >= self._archive_every:
            fd = os.open(self.directory / HEADS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, text + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._last_archived = now
        self._head = head

    def _catch_up(self) -> None:
        """Another process may have appended since we last looked."""
        if os.fstat(self._events_fd).st_size != self._events_end:
            self._load()

    def _load(self) -> None:
        """Bring memory and hash files in line with the events and the last head."""
        head = read_head_file(self.directory / HEAD_FILE)
        if head is None:
            head = last_archived_head(self.directory / HEADS_FILE)
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
        self._stack = self._stack_from_files(size)
        if self._events_end > os.fstat(self._events_fd).st_size:
            raise StorageError(
                f"the audit log holds fewer events than its signed head ({size}); "
                "run `letterlock log verify`"
            )
        # events fsynced after the last head (a crash before signing): take them in
        tail = self._read_tail()
        if tail:
            self._add_hashes(tail)
        os.ftruncate(self._events_fd, self._events_end)
        if head is None or tail:
            self._sign_head(self._now())
        else:
            self._head = head

    def _hashes_match(self, size: int, root: bytes) -> bool:
        if self._hashes.entries(0) < size:
            return False
        try:
            return self.subtree_hash(0, size) == root
        except StorageError:
            return False

    def _read_tail(self) -> list[bytes]:
        """Complete, well-formed records after the hashed part, in index order."""
        size = os.fstat(self._events_fd).st_size
        data = os.pread(self._events_fd, size - self._events_end, self._events_end)
        leaves: list[bytes] = []
        for line in data.split(b"\n")[:-1]:  # the last piece has no newline: torn
            try:
                rec = records.decode(line)
            except InvalidInput:
                break
            if rec.index != self._size + len(leaves) or canonical_json(json.loads(line)) != line:
                break
            leaves.append(line)
        return leaves

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

    def _stack_from_files(self, size: int) -> list[tuple[int, bytes]]:
        stack = []
        position = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                stack.append((level, self._hashes.node(level, position >> level)))
                position += 1 << level
        return stack


def read_head_file(path: Path) -> SignedHead | None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    try:
        return SignedHead.from_json(json.loads(text))
    except (ValueError, VerificationError) as exc:
        raise StorageError(f"{path.name} is not a signed tree head: {exc}") from exc


def last_archived_head(path: Path) -> SignedHead | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return SignedHead.from_json(json.loads(line))
        except (ValueError, VerificationError):
            continue
    return None
