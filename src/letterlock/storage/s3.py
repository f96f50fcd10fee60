"""Blob store on an S3-compatible bucket (one bucket per region), for scale-out.

Each sealed blob is one object named by a random id (``uuid4().hex``), so processes
never coordinate to name blobs and an id is never reused. An S3 PUT is durable when it
succeeds, so :meth:`S3BlobStore.put_many` returns once every PUT of the batch has
answered success; the PUTs of a batch run concurrently. (That holds for AWS S3 and for
services configured to sync before answering; SeaweedFS, for one, syncs a path only
when told to: ``weed shell`` ``fs.configure -locationPrefix=/buckets/ -fsync=true -apply``.)

The requests go through obstore's blocking functions on a private thread pool rather
than its ``*_async`` functions: with the latter, a completion can still be delivered
from obstore's runtime thread while the interpreter exits, which aborts the process
(seen here in roughly one exit in ten); pool threads finish before the interpreter
does. The event loop is never blocked either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from letterlock.errors import InvalidInput, StorageError, UnknownMessage

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

T = TypeVar("T")
_ID = re.compile(r"^[0-9a-f]{32}$")


def _check(blob_id: str) -> str:
    if not _ID.match(blob_id):
        raise InvalidInput(f"invalid blob id {blob_id!r}")
    return blob_id


class S3BlobStore:
    def __init__(self, bucket: str, *, endpoint: str, access_key: str, secret_key: str,
                 region: str = "us-east-1", prefix: str = "", threads: int = 16,
                 max_retries: int = 3, timeout_s: float = 60.0) -> None:
        self.bucket = bucket
        client: ClientConfig = {
            "allow_http": endpoint.startswith("http://"),
            "connect_timeout": timedelta(seconds=10),
            "timeout": timedelta(seconds=timeout_s),
        }
        retry: RetryConfig = {"max_retries": max_retries,
                              "retry_timeout": timedelta(seconds=timeout_s)}
        try:
            self._store = S3Store(bucket, prefix=prefix or None, endpoint=endpoint,
                                  access_key_id=access_key, secret_access_key=secret_key,
                                  region=region, virtual_hosted_style_request=False,
                                  client_options=client, retry_config=retry)
        except BaseError as exc:
            raise StorageError(f"S3 bucket {bucket} at {endpoint}: {exc}") from exc
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"s3-{bucket}")

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"S3 {what} in bucket {self.bucket}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")

    # -- blocking steps, run on the pool -------------------------------------------
    def _put(self, blob_id: str, data: bytes) -> None:
        obstore.put(self._store, blob_id, data)

    def _get(self, blob_id: str) -> bytes:
        try:
            return obstore.get(self._store, blob_id).bytes().to_bytes()
        except FileNotFoundError:
            raise UnknownMessage(f"blob {blob_id} not found") from None
        except NotFoundError:
            raise UnknownMessage(f"blob {blob_id} not found") from None
        except BaseError as exc:
            raise self._error(f"reading {blob_id}", exc) from exc

    def _delete(self, blob_ids: Sequence[str]) -> None:
        try:
            obstore.delete(self._store, list(blob_ids))
        except (FileNotFoundError, NotFoundError):
            pass  # already gone: deleting is idempotent
        except BaseError as exc:
            raise self._error("delete", exc) from exc

    def _list(self) -> list[str]:
        try:
            return sorted(meta["path"] for batch in obstore.list(self._store)
                          for meta in batch if _ID.match(meta["path"]))
        except BaseError as exc:
            raise self._error("listing", exc) from exc

    # -- BlobStore ------------------------------------------------------------------
    async def put_many(self, datas: Sequence[bytes]) -> list[str]:
        ids = [uuid.uuid4().hex for _ in datas]
        results = await asyncio.gather(
            *(self._call(functools.partial(self._put, i, d))
              for i, d in zip(ids, datas, strict=True)),
            return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Nothing of a failed batch is acknowledged; remove what did land.
            stored = [i for i, r in zip(ids, results, strict=True)
                      if not isinstance(r, BaseException)]
            if stored:
                # If this fails too, the leftovers are unreferenced and list_ids shows them.
                with contextlib.suppress(StorageError):
                    await self._call(functools.partial(self._delete, stored))
            first = failures[0]
            if isinstance(first, BaseError | OSError):
                raise self._error("write", first) from first
            raise first
        return ids

    async def put_named(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store each blob under the id it had (restoring a backup: the metadata names
        them by these ids). Returns when every PUT has succeeded."""
        for blob_id, _ in items:
            _check(blob_id)
        try:
            await asyncio.gather(*(self._call(functools.partial(self._put, i, d))
                                   for i, d in items))
        except (BaseError, OSError) as exc:
            raise self._error("write", exc) from exc

    async def get(self, blob_id: str) -> bytes:
        _check(blob_id)
        return await self._call(lambda: self._get(blob_id))

    async def get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(_check(b) for b in blob_ids))
        datas = await asyncio.gather(*(self.get(b) for b in wanted))
        return dict(zip(wanted, datas, strict=True))

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        wanted = sorted({_check(b) for b in blob_ids})
        for start in range(0, len(wanted), 1000):
            part = wanted[start : start + 1000]
            await self._call(functools.partial(self._delete, part))

    async def list_ids(self) -> list[str]:
        return await self._call(self._list)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._pool.shutdown(wait=True))
