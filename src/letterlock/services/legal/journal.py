"""The audit side of legal matters: each step's events reach the audit log exactly
once, even across a crash.

A step commits its changes and its events together (``LegalTxn.log``, into the
legal database's outbox); :meth:`MatterJournal.deliver` then appends them to the
audit log and clears them. Delivery runs under one lock across processes, in three
durable moves: note each event as it will be appended (with the log's size before),
append, clear. An event found noted but not cleared was perhaps appended before a
crash: it is looked for in the log from the noted size on, and appended only if
absent. A sink that cannot be searched (``EventFinder``) gets it again (at least once).

Secrecy is decided here, at delivery, under the lock: an event about a matter whose
order (the effective gag, ``Jurisdictions.effective_gag``) is in force and not lifted
goes in sealed. Lifting an order reveals the matter's sealed events under the same
lock (:meth:`MatterJournal.deliver` with ``reveal``), so no event of the matter can
slip in sealed after the reveal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from letterlock.audit.events import AuditEvent, AuditSink, EventFinder, EventType, Revealer
from letterlock.audit.records import event_from_json, event_to_json
from letterlock.audit.verify import canonical_json
from letterlock.errors import NotFound
from letterlock.policy import Jurisdictions, LegalRequest, parse_request
from letterlock.storage.legal_sqlite import LegalStore, LegalTxn, OutboxRow

INDEFINITE = datetime(9999, 12, 31, tzinfo=UTC)
"""``sealed_until`` of an event under an order without end date."""


_Seal = tuple[datetime, tuple[tuple[str, str], ...]]


def _text(event: AuditEvent) -> str:
    return canonical_json(event_to_json(event)).decode("ascii")


class MatterJournal:
    def __init__(self, store: LegalStore, audit: AuditSink, jurisdictions: Jurisdictions,
                 work_dir: Path) -> None:
        self._store = store
        self._audit = audit
        self._jurisdictions = jurisdictions
        self._dir = work_dir
        self._lock = asyncio.Lock()

    # -- writing a step's events ----------------------------------------------------------

    @staticmethod
    def log(txn: LegalTxn, kind: EventType, actor: str, at: datetime,
            request: LegalRequest, matter: str, account: str | None = None,
            details: Sequence[tuple[str, str]] = ()) -> None:
        """Add the events of one step to ``txn``. A step of the whole matter is about
        each target account: one event per account, so each owner's access feed shows
        it (once no order hides it)."""
        accounts: Sequence[str | None] = (
            [account] if account is not None else list(request.targets) or [None])
        for target in accounts:
            txn.log(_text(AuditEvent(kind, actor, at, account=target, matter=matter,
                                     details=tuple(details))))

    # -- delivering -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One deliverer at a time, in this process and across processes."""
        async with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._dir / "audit-outbox.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    async def deliver(self, *, reveal: str | None = None,
                      reseal: str | None = None) -> int:
        """Put every event waiting in the outbox into the audit log, exactly once;
        then, with ``reveal``, reveal that matter's sealed events (its order was
        lifted), or with ``reseal`` move their end to the order's extended end.
        Returns how many events were appended."""
        async with self._exclusive():
            appended = await self._deliver_locked()
            if reveal is not None and isinstance(self._audit, Revealer):
                await self._audit.reveal_matter(reveal, "legal")
            if reseal is not None and isinstance(self._audit, Revealer):
                seal = await self._seal_of(reseal)
                if seal is not None:
                    until, _ = seal
                    await self._audit.reseal_matter(reseal, until)
            return appended

    async def _deliver_locked(self) -> int:
        rows = await self._store.outbox()
        if not rows:
            return 0
        finder = self._audit if isinstance(self._audit, EventFinder) else None
        tried = [r for r in rows if r.sent is not None]
        if tried and finder is not None:
            tried = await self._clear_found(finder, tried)
        fresh = [r for r in rows if r.sent is None]
        sealing: dict[str, _Seal | None] = {}
        events: list[tuple[int, AuditEvent]] = []
        for row in fresh:
            events.append((row.id, await self._as_logged(row, sealing)))
        if events:
            size = await finder.log_size() if finder is not None else 0
            await self._store.outbox_trying([(i, _text(e)) for i, e in events], size)
        # Tried before but not found (or not searchable): appended again, as noted.
        events += [(r.id, event_from_json(json.loads(r.sent or ""))) for r in tried]
        events.sort(key=lambda pair: pair[0])
        # One call per event, started in order: the sink keeps the order and groups
        # them into one fsync.
        await asyncio.gather(*(self._audit.record(e) for _, e in events))
        await self._store.outbox_done([i for i, _ in events])
        return len(events)

    async def _clear_found(self, finder: EventFinder,
                           tried: list[OutboxRow]) -> list[OutboxRow]:
        """Clear the tried events the log holds; returns the others."""
        start = min(r.log_from or 0 for r in tried)
        found = Counter(_text(e) for e in await finder.events_since(start))
        done, missing = [], []
        for row in tried:
            key = _text(event_from_json(json.loads(row.sent or "")))
            if found[key] > 0:
                found[key] -= 1
                done.append(row.id)
            else:
                missing.append(row)
        if done:
            await self._store.outbox_done(done)
        return missing

    async def _as_logged(self, row: OutboxRow, cache: dict[str, _Seal | None]) -> AuditEvent:
        """The event as it goes into the log: sealed while its matter's order holds."""
        event = event_from_json(json.loads(row.event))
        if event.matter is None:
            return event
        if event.matter not in cache:
            cache[event.matter] = await self._seal_of(event.matter)
        seal = cache[event.matter]
        if seal is None:
            return event
        until, extra = seal
        return AuditEvent(event.type, event.actor, event.at, event.account, event.matter,
                          event.details + extra, until)

    async def _seal_of(self, matter: str) -> _Seal | None:
        """``sealed_until`` and the details sealing adds, for an event of ``matter``;
        None when no order is in force."""
        try:
            row = await self._store.get_matter(matter)
        except NotFound:
            return None
        if await self._store.gag_lifted_at(matter) is not None:
            return None
        extended = await self._store.gag_extensions()
        if matter in extended:  # the order as last extended
            until = extended[matter]
            return (INDEFINITE, (("indefinite", "true"),)) if until is None else (until, ())
        gag = self._jurisdictions.effective_gag(parse_request(json.loads(row.request)))
        if gag is None:
            return None
        if gag.until is None:
            return INDEFINITE, (("indefinite", "true"),)
        return gag.until, ()

    async def reseal_extended(self) -> None:
        """An order extended just before a crash may have left its commitments with
        the old end: move them now."""
        if not isinstance(self._audit, Revealer):
            return
        sealed = await self._audit.sealed_matters()
        for matter in sorted(set(await self._store.gag_extensions()) & sealed):
            await self.deliver(reseal=matter)

    async def reveal_lifted(self) -> None:
        """An order lifted just before a crash may have left events sealed: reveal
        them now."""
        if not isinstance(self._audit, Revealer):
            return
        lifted = set(await self._store.lifted_matters())
        for matter in sorted(lifted & await self._audit.sealed_matters()):
            await self.deliver(reveal=matter)
