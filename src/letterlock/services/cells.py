"""The set of region cells and the per-cell group committer.

A :class:`Cell` is one region's metadata store plus blob store. Appends go through its
:class:`GroupCommitter`: concurrent appends are gathered into one batch whose blobs
are made durable together (one flush) and whose metadata is written in one
transaction (one WAL fsync), so durability costs are shared, never skipped.

The two stages are pipelined: while batch N's metadata commits, batch N+1's blobs are
already being flushed. A batch's metadata is only written after its own blobs are
durable, and an append is acknowledged only after its metadata is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from letterlock.errors import UnknownRegion
from letterlock.storage.contracts import BlobStore, CellStore
from letterlock.storage.models import Appended, NewMessage, Region


@dataclass
class _Pending:
    messages: Sequence[NewMessage]
    blobs: Sequence[bytes]
    future: asyncio.Future[list[Appended]] = field(repr=False)


class GroupCommitter:
    def __init__(self, store: CellStore, blobs: BlobStore, max_batch: int = 256) -> None:
        self._store = store
        self._blobs = blobs
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, messages: Sequence[NewMessage],
                     blobs: Sequence[bytes]) -> list[Appended]:
        """Make ``blobs`` durable, then append ``messages`` (the i-th message gets the
        i-th blob's id) in one transaction shared with whatever else is waiting.
        Returns after both are on stable storage."""
        if len(messages) != len(blobs):
            raise ValueError("one blob per message")
        future: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(messages, blobs, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await asyncio.shield(future)

    async def _flush_loop(self) -> None:
        metadata: asyncio.Task[None] | None = None
        while True:
            while self._pending:
                batch, self._pending = (self._pending[: self._max_batch],
                                        self._pending[self._max_batch :])
                try:
                    ids = await self._blobs.put_many(
                        [b for entry in batch for b in entry.blobs])
                except Exception:
                    await self._one_by_one(batch)
                    continue
                if metadata is not None:
                    await metadata  # at most one metadata commit in flight
                metadata = asyncio.create_task(self._write_metadata(batch, ids))
                # Let the next appends gather while this batch's metadata commits.
                await asyncio.sleep(0)
            if metadata is None:
                return
            await metadata
            metadata = None
            # Appends that arrived while the last commit ran are this loop's too:
            # ``append`` starts no new flusher while this one is alive.

    async def _write_metadata(self, batch: list[_Pending], ids: Sequence[str]) -> None:
        try:
            await self._finish(batch, ids)
        except Exception:
            await self._one_by_one(batch)

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        # Attribute a failure: retry each entry alone so one bad append (e.g. to a
        # mailbox deleted meanwhile) does not fail its neighbours.
        for entry in batch:
            if entry.future.done():
                continue
            try:
                await self._commit([entry])
            except Exception as exc:
                entry.future.set_exception(exc)

    async def _commit(self, batch: list[_Pending]) -> None:
        ids = await self._blobs.put_many([b for entry in batch for b in entry.blobs])
        await self._finish(batch, ids)

    async def _finish(self, batch: list[_Pending], ids: Sequence[str]) -> None:
        messages = [m for e in batch for m in e.messages]
        results = await self._store.append_messages(
            [replace(m, blob_id=i) for m, i in zip(messages, ids, strict=True)])
        pos = 0
        for entry in batch:
            count = len(entry.messages)
            if not entry.future.done():
                entry.future.set_result(results[pos : pos + count])
            pos += count

    async def drain(self) -> None:
        if self._flusher is not None:
            await self._flusher


@dataclass
class Cell:
    region: Region
    store: CellStore
    blobs: BlobStore
    committer: GroupCommitter

    async def close(self) -> None:
        await self.committer.drain()
        await self.store.close()
        await self.blobs.close()


class Cells:
    """Every region's cell, by region id."""

    def __init__(self, cells: Sequence[Cell] = ()) -> None:
        self._cells = {cell.region.id: cell for cell in cells}

    def add(self, cell: Cell) -> None:
        self._cells[cell.region.id] = cell

    def get(self, region_id: str) -> Cell:
        try:
            return self._cells[region_id]
        except KeyError:
            raise UnknownRegion(f"no region {region_id!r}") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._cells.values())

    def __contains__(self, region_id: object) -> bool:
        return region_id in self._cells

    async def close(self) -> None:
        for cell in self._cells.values():
            await cell.close()
