"""The asyncio face of the audit log: :class:`AuditLog` implements ``AuditSink``.

File I/O runs in an executor thread. Concurrent ``record`` calls are grouped: while
one batch is being written and fsynced, new events queue up and go out together in
the next batch, so many callers share one fsync (group commit) and each call still
returns only once its event is durable. Commitments whose order has expired are
revealed automatically (checked at most once a minute while events flow; `letterlock
log reveal --due` does the same from cron).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from letterlock.audit.events import AuditEvent
from letterlock.audit.sealed_files import SealedEntry
from letterlock.audit.store import MerkleLog
from letterlock.audit.verify import SignedHead
from letterlock.errors import LetterlockError, StorageError

REVEAL_ACTOR = "audit-log"


@dataclass
class _Pending:
    event: AuditEvent
    done: asyncio.Future[int]


class AuditLog:
    """Durable, group-committing ``AuditSink`` over a :class:`MerkleLog`."""

    def __init__(
        self,
        log: MerkleLog,
        executor: Executor | None = None,
        *,
        reveal_every: float = 60.0,
    ) -> None:
        self.log = log
        self._executor = executor
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._reveal_every = reveal_every
        self._last_reveal_check: float | None = None

    async def record(self, event: AuditEvent) -> int:
        """Append ``event``; returns its index once it is on stable storage."""
        loop = asyncio.get_running_loop()
        pending = _Pending(event, loop.create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        return await pending.done

    async def record_many(self, events: list[AuditEvent]) -> list[int]:
        return list(await asyncio.gather(*(self.record(e) for e in events)))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                indices = await loop.run_in_executor(
                    self._executor, self.log.append, [p.event for p in batch]
                )
            except LetterlockError as exc:
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            except OSError as exc:
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(StorageError(f"audit log append failed: {exc}"))
                continue
            for p, index in zip(batch, indices, strict=True):
                if not p.done.done():
                    p.done.set_result(index)
            await self._reveal_expired(loop)

    async def _reveal_expired(self, loop: asyncio.AbstractEventLoop) -> None:
        """Orders expire on their own: while events flow, reveal due commitments (at
        most once per ``reveal_every`` seconds) so nobody has to remember to."""
        now = loop.time()
        if self._last_reveal_check is not None and (
            now - self._last_reveal_check < self._reveal_every
        ):
            return
        self._last_reveal_check = now
        # a failed reveal is retried at the next check; the events already went in
        with contextlib.suppress(LetterlockError, OSError):
            await loop.run_in_executor(self._executor, self.log.reveal_due, REVEAL_ACTOR)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def head(self) -> SignedHead:
        head: SignedHead = await self._call(self.log.head)
        return head

    async def inclusion_bundle(self, index: int) -> dict[str, Any]:
        bundle: dict[str, Any] = await self._call(self.log.inclusion_bundle, index)
        return bundle

    async def reveal(self, index: int, actor: str, at: datetime | None = None) -> int:
        revealed: int = await self._call(self.log.reveal, index, actor, at)
        return revealed

    async def reveal_due(self, actor: str, now: datetime | None = None) -> list[int]:
        revealed: list[int] = await self._call(self.log.reveal_due, actor, now)
        return revealed

    async def reveal_matter(self, matter: str, actor: str) -> list[int]:
        """Reveal every commitment about legal matter ``matter`` (its order was lifted)."""
        await self.flush()
        revealed = []
        for entry in await self.sealed_entries():
            if entry.event.matter == matter:
                revealed.append(await self.reveal(entry.index, actor))
        return revealed

    async def reseal_matter(self, matter: str, until: datetime | None) -> int:
        """The order over legal matter ``matter`` was extended to ``until`` (None: no
        end date): its commitments are not revealed at the old date."""
        await self.flush()
        indexes = [e.index for e in await self.sealed_entries() if e.event.matter == matter]
        changed: int = await self._call(self.log.reseal, indexes, until)
        return changed

    async def sealed_matters(self) -> set[str]:
        """The matters that have commitments not yet revealed."""
        return {m for e in await self.sealed_entries() if (m := e.event.matter) is not None}

    async def log_size(self) -> int:
        """Records in the log as this process last saw it (a lower bound)."""
        return self.log.size

    async def events_since(self, start: int) -> list[AuditEvent]:
        """Events recorded at index ``start`` or later (see ``EventFinder``)."""
        await self.flush()
        events: list[AuditEvent] = await self._call(self.log.events_since, start)
        return events

    async def sealed_entries(self) -> list[SealedEntry]:
        entries: list[SealedEntry] = await self._call(self.log.sealed_entries)
        return entries

    async def flush(self) -> None:
        """Wait until queued events (and any reveal they triggered) are written."""
        while self._writer is not None and not self._writer.done():
            await self._writer

    async def close(self) -> None:
        """Wait for queued events, then close the files."""
        await self.flush()
        await self._call(self.log.close)
