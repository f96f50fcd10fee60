"""The audit log's files under one directory, and positional access to its hash files.

Layout (the app uses ``HOME/control/audit/``)::

    events.jsonl     one canonical record per line: the leaves, the only source of truth
    leaves.idx       per leaf: 32-byte leaf hash + 8-byte end offset in events.jsonl
    level-KK.hash    per complete, aligned subtree of 2**KK leaves: its 32-byte hash
    head.json        the latest signed tree head (replaced atomically)
    head.pending.json the head an append signs before writing its events (see heads)
    heads.jsonl      signed heads kept for history (at most one a minute by default)
    sealed/N.json    salt and content of commitment N until it is revealed (0600)
    log-key.pem/.pub the operator's Ed25519 log key
    append.lock      serialises writers across processes (flock)

The hash files are derived from ``events.jsonl`` and let proofs read O(log n) stored
nodes instead of rehashing the log. ``store`` writes them; ``check`` reads them on its
own to verify a log from the files alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from letterlock.errors import StorageError

EVENTS_FILE = "events.jsonl"
LEAVES_FILE = "leaves.idx"
HEAD_FILE = "head.json"
HEADS_FILE = "heads.jsonl"
PENDING_FILE = "head.pending.json"
SET_ASIDE_DIR = "set-aside"
"""Bytes found after the last signed head that were taken out of events.jsonl (a torn
append, or what ``letterlock log recover --set-aside`` moved): kept, never deleted."""
SEALED_DIR = "sealed"
LOCK_FILE = "append.lock"
LEAF_STRIDE = 40
NODE_STRIDE = 32


def level_file(level: int) -> str:
    return f"level-{level:02d}.hash"


class HashFiles:
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
