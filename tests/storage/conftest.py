"""Every storage implementation, as parametrized fixtures for the contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.storage.contracts import BlobStore, CellStore, ControlStore
from letterlock.storage.files import FileBlobStore
from letterlock.storage.memory import MemoryBlobStore, MemoryCellStore, MemoryControlStore
from letterlock.storage.sqlite import SqliteCellStore, SqliteControlStore

CELL_KINDS = ["memory", "sqlite"]
BLOB_KINDS = ["memory", "files"]


@pytest.fixture(params=CELL_KINDS)
async def cell(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CellStore]:
    store: CellStore
    if request.param == "memory":
        store = MemoryCellStore()
    else:
        store = SqliteCellStore(tmp_path / "cell.sqlite3")
    yield store
    await store.close()


@pytest.fixture(params=CELL_KINDS)
async def control(request: pytest.FixtureRequest,
                  tmp_path: Path) -> AsyncIterator[ControlStore]:
    store: ControlStore
    if request.param == "memory":
        store = MemoryControlStore()
    else:
        store = SqliteControlStore(tmp_path / "control.sqlite3")
    yield store
    await store.close()


@pytest.fixture(params=BLOB_KINDS)
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    store: BlobStore = (MemoryBlobStore() if request.param == "memory"
                        else FileBlobStore(tmp_path / "blobs"))
    yield store
    await store.close()
