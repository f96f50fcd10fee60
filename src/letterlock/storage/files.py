"""Blob store on the local file system: sealed blobs packed into append-only segment
files under a cell's ``blobs/`` directory.

Why segments: durability is bounded by fsync, and one ``fdatasync`` of one appended
file costs a fraction of a millisecond, while making N separate files durable costs N
file fsyncs plus directory fsyncs (about 1 ms each here, ~16 ms for a batch of 16). A
group commit therefore appends the whole batch to the active segment and flushes it
once.

A blob id names its location: ``SSSSSSSS OOOOOOOOOOOO LLLLLLLL`` (hex segment number,
byte offset, length), so no lookup index is needed to read. Each segment has a
companion ``.idx`` journal (``+id`` when written, ``-id`` when deleted) from which ids
are listed for consistency checks; it is advisory (not flushed), the metadata store is
the truth about which blobs are live. Deleting a blob punches a hole over its bytes
(``fallocate(PUNCH_HOLE)``, or zeroes where that is unsupported): deleted ciphertext
does not linger in the file and its space returns to the file system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from letterlock.errors import InvalidInput, StorageError, UnknownMessage
from letterlock.storage.durable import fsync_dir

_ID = re.compile(r"^([0-9a-f]{8})([0-9a-f]{12})([0-9a-f]{8})$")
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024


def _load_fallocate() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        func = ctypes.CDLL(name, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    func.restype = ctypes.c_int
    return func


def parse_id(blob_id: str) -> tuple[int, int, int]:
    match = _ID.match(blob_id)
    if not match:
        raise InvalidInput(f"invalid blob id {blob_id!r}")
    return int(match[1], 16), int(match[2], 16), int(match[3], 16)


class FileBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True, threads: int = 4,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.root = root
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        root.mkdir(parents=True, exist_ok=True)
        self._fallocate = _load_fallocate()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blobs")
        self._write_lock = threading.Lock()
        segments = sorted(int(p.stem, 16) for p in root.glob("*.pack"))
        self._active = segments[-1] if segments else 0
        self._fd: int | None = None
        self._idx_fd: int | None = None

    def _pack(self, segment: int) -> Path:
        return self.root / f"{segment:08x}.pack"

    def _idx(self, segment: int) -> Path:
        return self.root / f"{segment:08x}.idx"

    # -- writing ------------------------------------------------------------------
    def _put_many(self, datas: Sequence[bytes]) -> list[str]:
        with self._write_lock:
            try:
                return self._append_locked(datas)
            except OSError as exc:
                self._close_active()
                raise StorageError(f"writing blobs failed: {exc}") from exc

    def _open_active(self) -> None:
        """Open the newest segment with room (a new one when all are full)."""
        newest = max((int(p.stem, 16) for p in self.root.glob("*.pack")), default=0)
        self._active = max(self._active, newest)
        while True:
            pack = self._pack(self._active)
            created = not pack.exists()
            fd = os.open(pack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if os.fstat(fd).st_size < self._segment_bytes:
                break
            os.close(fd)
            self._active += 1
        try:
            idx = os.open(self._idx(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                          0o600)
        except OSError:
            os.close(fd)
            raise
        if created and self._fsync:
            fsync_dir(self.root)
        self._fd, self._idx_fd = fd, idx

    def _close_active(self) -> None:
        for fd in (self._fd, self._idx_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._idx_fd = None

    def _append_locked(self, datas: Sequence[bytes]) -> list[str]:
        # The active segment stays open between batches, so a batch costs a handful
        # of system calls (lock, size, write, flush, journal), each of which hands the
        # interpreter lock back and forth with the event loop.
        if self._fd is None:
            self._open_active()
        fd = self._fd
        assert fd is not None and self._idx_fd is not None
        # Other processes (a CLI command beside `serve`, MX workers) append to the
        # same pack: the offset is only ours while we hold the file lock.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            offset = os.fstat(fd).st_size
            ids = []
            for data in datas:
                ids.append(f"{self._active:08x}{offset:012x}{len(data):08x}")
                offset += len(data)
            payload = b"".join(datas)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if self._fsync:
                os.fdatasync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        # The journal only serves listing; reads never need it, and the metadata
        # store (not this file) says which blobs are live, so it is not flushed.
        os.write(self._idx_fd, b"".join(b"+" + i.encode() + b"\n" for i in ids))
        if offset >= self._segment_bytes:
            self._close_active()
            self._active += 1
        return ids

    # -- reading ------------------------------------------------------------------
    def _get(self, blob_id: str) -> bytes:
        segment, offset, length = parse_id(blob_id)
        try:
            with open(self._pack(segment), "rb") as fh:
                data = os.pread(fh.fileno(), length, offset)
        except FileNotFoundError:
            raise UnknownMessage(f"blob {blob_id} not found") from None
        except OSError as exc:
            raise StorageError(f"reading blob {blob_id} failed: {exc}") from exc
        if len(data) != length or (length and not data.strip(b"\x00")):
            raise UnknownMessage(f"blob {blob_id} not found")
        return data

    def _get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        handles: dict[int, int] = {}
        try:
            for blob_id in blob_ids:
                segment, offset, length = parse_id(blob_id)
                fd = handles.get(segment)
                if fd is None:
                    try:
                        fd = handles[segment] = os.open(self._pack(segment), os.O_RDONLY)
                    except FileNotFoundError:
                        raise UnknownMessage(f"blob {blob_id} not found") from None
                data = os.pread(fd, length, offset)
                if len(data) != length or (length and not data.strip(b"\x00")):
                    raise UnknownMessage(f"blob {blob_id} not found")
                out[blob_id] = data
        except OSError as exc:
            raise StorageError(f"reading blobs failed: {exc}") from exc
        finally:
            for fd in handles.values():
                os.close(fd)
        return out

    # -- deleting -----------------------------------------------------------------
    def _punch(self, fd: int, offset: int, length: int) -> None:
        if self._fallocate is not None and self._fallocate(
                fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
            return
        os.pwrite(fd, b"\x00" * length, offset)

    def _delete_many(self, blob_ids: Sequence[str]) -> None:
        by_segment: dict[int, list[tuple[str, int, int]]] = {}
        for blob_id in blob_ids:
            segment, offset, length = parse_id(blob_id)
            by_segment.setdefault(segment, []).append((blob_id, offset, length))
        with self._write_lock:
            for segment, items in by_segment.items():
                try:
                    fd = os.open(self._pack(segment), os.O_WRONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    for _id, offset, length in items:
                        self._punch(fd, offset, length)
                    if self._fsync:
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
                with open(self._idx(segment), "ab") as fh:
                    fh.write(b"".join(b"-" + i.encode() + b"\n" for i, _, _ in items))

    def _live(self, segment: int) -> list[str]:
        live: dict[str, None] = {}
        try:
            lines = self._idx(segment).read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        for line in lines:
            if line.startswith(b"+"):
                live[line[1:].decode()] = None
            elif line.startswith(b"-"):
                live.pop(line[1:].decode(), None)
        return list(live)

    def _list_ids(self) -> list[str]:
        return sorted(i for p in self.root.glob("*.idx") for i in self._live(int(p.stem, 16)))

    # -- async surface ------------------------------------------------------------
    async def put_many(self, datas: Sequence[bytes]) -> list[str]:
        if not datas:
            return []
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._put_many,
                                                                datas)

    async def get(self, blob_id: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, blob_id)

    async def get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._get_many, blob_ids)

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._delete_many,
                                                         blob_ids)

    async def list_ids(self) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._list_ids)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._write_lock:
            self._close_active()
