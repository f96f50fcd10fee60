"""Stand-ins for a region whose storage could not be opened.

A region's database can be damaged (a bad page, a lost file) or out of reach (its
PostgreSQL or S3 endpoint down at start). That region's accounts cannot be served,
but the other regions must be: the server starts with these stand-ins in the damaged
region's place. Every operation on them raises :class:`StorageError` naming the
region and what went wrong, which the front-ends already turn into temporary
failures (IMAP ``NO [UNAVAILABLE]``, SMTP/LMTP ``451 4.3.0``, HTTP 503) for that
region's accounts only. Nothing is written, so nothing more is damaged; the operator
repairs or restores the region (``letterlock restore``) and restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from letterlock.errors import StorageError


class UnavailableStore:
    """Answers every storage call of a cell (metadata or blobs) with StorageError;
    ``close`` does nothing. Stands in for a CellStore or a BlobStore, including
    methods added to those contracts later."""

    def __init__(self, region: str, reason: str) -> None:
        self.region = region
        self.reason = reason

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, NoReturn]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def unavailable(*_args: object, **_kwargs: object) -> NoReturn:
            raise StorageError(f"region {self.region} is unavailable: {self.reason}")

        unavailable.__name__ = name
        return unavailable

    async def close(self) -> None:
        return None
