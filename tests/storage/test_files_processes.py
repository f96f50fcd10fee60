"""The file blob store shared by several processes (`serve` plus a CLI command, or MX
workers): concurrent appenders must never be handed overlapping locations."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

from letterlock.storage.files import FileBlobStore


def _writer(root: str, tag: int, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> list[tuple[str, bytes]]:
        store = FileBlobStore(Path(root), segment_bytes=64 * 1024)
        out = []
        for i in range(count):
            data = f"{tag}:{i}:".encode() * (100 + i % 7)
            [blob_id] = await store.put_many([data])
            out.append((blob_id, data))
        await store.close()
        return out

    queue.put(asyncio.run(run()))


async def test_two_processes_appending_get_disjoint_blobs(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), tag, 400, queue))
             for tag in (1, 2)]
    for proc in procs:
        proc.start()
    written = queue.get(timeout=120) + queue.get(timeout=120)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    store = FileBlobStore(tmp_path)
    got = await store.get_many([blob_id for blob_id, _ in written])
    assert all(got[blob_id] == data for blob_id, data in written)
    assert len({blob_id for blob_id, _ in written}) == 800
    # small segments forced several roll-overs while both were writing
    assert len(list(tmp_path.glob("*.pack"))) > 2
    await store.close()
