"""Every storage implementation, as parametrized fixtures for the contract suite.

The scale-out backends need servers: PostgreSQL (``support.postgres``: the server named
by LETTERLOCK_TEST_POSTGRES_URL or a throwaway cluster) and SeaweedFS for S3
(``support.seaweed``). Their parameters are skipped, with the reason, when those
cannot run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.storage.contracts import BlobStore, CellStore, ControlStore
from letterlock.storage.files import FileBlobStore
from letterlock.storage.memory import MemoryBlobStore, MemoryCellStore, MemoryControlStore
from letterlock.storage.sqlite import SqliteCellStore
from letterlock.storage.sqlite_control import SqliteControlStore
from support.postgres import postgres_db, postgres_server
from support.seaweed import Seaweed, s3_bucket, seaweed

__all__ = ["postgres_db", "postgres_server", "s3_bucket", "seaweed"]

CELL_KINDS = ["memory", "sqlite", "postgres"]
BLOB_KINDS = ["memory", "files", "s3"]


@pytest.fixture(params=CELL_KINDS)
async def cell(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CellStore]:
    store: CellStore
    if request.param == "memory":
        store = MemoryCellStore()
    elif request.param == "postgres":
        from letterlock.storage.postgres import PostgresCellStore

        store = PostgresCellStore(request.getfixturevalue("postgres_db"))
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
    elif request.param == "postgres":
        from letterlock.storage.postgres import PostgresControlStore

        store = PostgresControlStore(request.getfixturevalue("postgres_db"))
    else:
        store = SqliteControlStore(tmp_path / "control.sqlite3")
    yield store
    await store.close()


@pytest.fixture(params=BLOB_KINDS)
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    store: BlobStore
    if request.param == "memory":
        store = MemoryBlobStore()
    elif request.param == "s3":
        from letterlock.storage.s3 import S3BlobStore

        weed: Seaweed = request.getfixturevalue("seaweed")
        store = S3BlobStore(request.getfixturevalue("s3_bucket"), endpoint=weed.endpoint,
                            access_key=weed.access_key, secret_key=weed.secret_key,
                            region=weed.region)
    else:
        store = FileBlobStore(tmp_path / "blobs")
    yield store
    await store.close()
