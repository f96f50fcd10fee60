"""Blob store on the local file system: one file per sealed blob under a cell's
``blobs/`` directory, fanned out by the first two hex digits of the id.

Durability with group commit: a batch writes every file (to a temporary name, then
renamed into place) and then makes the whole batch durable with ONE ``syncfs(2)`` on
the file system, instead of one fsync per file and directory. Where ``syncfs`` is not
available each file and directory is fsynced.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from letterlock.errors import InvalidInput, StorageError, UnknownMessage

_ID = re.compile(r"^[0-9a-f]{8,64}$")


def _load_syncfs() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        func = ctypes.CDLL(name, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


class FileBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True, threads: int = 4) -> None:
        self.root = root
        self._fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        self._syncfs = _load_syncfs()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blobs")

    def _path(self, blob_id: str) -> Path:
        if not _ID.match(blob_id):
            raise InvalidInput(f"invalid blob id {blob_id!r}")
        return self.root / blob_id[:2] / blob_id

    def _sync_all(self, paths: Sequence[Path]) -> None:
        if not self._fsync:
            return
        if self._syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if self._syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            return
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for parent in {p.parent for p in paths}:
            fd = os.open(parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        written = []
        try:
            for blob_id, data in items:
                path = self._path(blob_id)
                path.parent.mkdir(exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
                written.append(path)
            self._sync_all(written)
        except OSError as exc:
            raise StorageError(f"writing blobs failed: {exc}") from exc

    def _get(self, blob_id: str) -> bytes:
        try:
            return self._path(blob_id).read_bytes()
        except FileNotFoundError:
            raise UnknownMessage(f"blob {blob_id} not found") from None
        except OSError as exc:
            raise StorageError(f"reading blob {blob_id} failed: {exc}") from exc

    def _get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return {blob_id: self._get(blob_id) for blob_id in blob_ids}

    def _delete_many(self, blob_ids: Sequence[str]) -> None:
        for blob_id in blob_ids:
            try:
                self._path(blob_id).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"deleting blob {blob_id} failed: {exc}") from exc

    def _list_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("??/*") if _ID.match(p.name))

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if items:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._put_many, items)

    async def get(self, blob_id: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, blob_id)

    async def get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._get_many, blob_ids)

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._delete_many, blob_ids)

    async def list_ids(self) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._list_ids)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
