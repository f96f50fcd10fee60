"""What the legal console reads beside a matter: its audit trail and its production
packages.

- ``matter_trail``: the audit events of one matter, oldest first, as the operator's
  copy of the log holds them (events under a non-disclosure order included: the
  operator keeps them sealed, the public log shows only commitments until they are
  revealed). A step of the whole matter is logged once per target account; the
  trail shows it once, with the accounts it was logged for. ``MatterTrails`` keeps
  them for the console and reads only what the log gained since.
- ``package_archives``: the signed zip of each stage's production package
  (``<matter>.zip``, ``<matter>-stage2.zip``, ...), as ``production`` wrote them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from letterlock.audit.events import AuditEvent, AuditSink, EventFinder, EventType
from letterlock.errors import NotFound
from letterlock.services.legal.matter import Matter


@dataclass(frozen=True)
class TrailEntry:
    type: str
    actor: str
    at: datetime
    accounts: tuple[str, ...]
    details: tuple[tuple[str, str], ...]
    sealed: bool
    """Logged under a non-disclosure order: the public log held only a commitment to
    it (until the order ended and it was revealed)."""


def _entries(events: list[AuditEvent]) -> list[TrailEntry]:
    """One entry per step, oldest first (an event revealed when its order was lifted
    is in the log after the lift: it is put back at its time), the per-account
    copies of a step folded into one."""
    out: list[TrailEntry] = []
    for event in sorted(events, key=lambda e: e.at):
        details = tuple((k, v) for k, v in event.details if k != "indefinite")
        last = out[-1] if out else None
        if last is not None and (last.type, last.actor, last.at, last.details) == (
                str(event.type), event.actor, event.at, details) and event.account:
            out[-1] = TrailEntry(last.type, last.actor, last.at,
                                 (*last.accounts, event.account), details, last.sealed)
            continue
        out.append(TrailEntry(str(event.type), event.actor, event.at,
                              (event.account,) if event.account else (), details,
                              event.sealed_until is not None))
    return out


def _finder(audit: AuditSink) -> EventFinder:
    if not isinstance(audit, EventFinder):
        raise NotFound("this audit log cannot be searched")
    return audit


async def matter_trail(audit: AuditSink, matter_id: str) -> list[TrailEntry]:
    """The audit events of ``matter_id``, oldest first, read from the whole log.
    Raises NotFound when the log cannot be searched (a sink that only appends)."""
    events = await _finder(audit).events_since(0)
    return _entries([e for e in events if e.matter == matter_id])


_CHANGES_SECRECY = frozenset({EventType.LEGAL_GAG_LIFTED, EventType.LEGAL_GAG_EXTENDED})
"""Events after which a matter's earlier events are revealed or sealed anew: the
index reads the log again from the start to show them as they are now."""


class MatterTrails:
    """The legal events of every matter, kept by this process and brought up to date
    from where it last read the log (reading a log of a million events takes seconds;
    its new end, milliseconds).

    The log's size is read before and after each read: when they agree, that is
    exactly where the read ended, and the next read starts there; when they do not
    (an event was appended meanwhile) the read is made again. An order lifted or
    extended makes the next read start from the beginning, so that the matter's
    events show whether they are sealed as they are now."""

    def __init__(self, audit: AuditSink, attempts: int = 4) -> None:
        self._audit = audit
        self._attempts = attempts
        self._next = 0
        self._events: dict[str, list[AuditEvent]] = {}
        self._lock = asyncio.Lock()

    async def _read(self, finder: EventFinder) -> None:
        for _ in range(self._attempts):
            start = self._next
            before = await finder.log_size()
            found = await finder.events_since(start)
            if await finder.log_size() != before:
                continue  # where this read ended is not known: read again
            if start > 0 and any(e.type in _CHANGES_SECRECY for e in found):
                self._next, self._events = 0, {}  # read it all as it is now
                continue
            self._next = before
            for event in found:
                if event.matter is not None:
                    self._events.setdefault(event.matter, []).append(event)
            return
        raise NotFound("the audit log kept changing while it was read; try again")

    async def trail(self, matter_id: str) -> list[TrailEntry]:
        """The audit events of ``matter_id``, oldest first. Raises NotFound when the
        log cannot be searched."""
        finder = _finder(self._audit)
        async with self._lock:
            await self._read(finder)
            return _entries(list(self._events.get(matter_id, [])))


def _stage_names(matter: Matter) -> list[str]:
    if matter.package is None:
        return []
    last = Path(matter.package).name
    names = [matter.id]
    stage = 2
    while names[-1] != last and stage < 1000:
        names.append(f"{matter.id}-stage{stage}")
        stage += 1
    return names


async def package_archives(matter: Matter) -> list[Path]:
    """The zip of each production stage of ``matter`` that is on disk, first stage
    first (none when nothing was handed over)."""
    if matter.package is None:
        return []
    folder = Path(matter.package).parent
    candidates = [folder / f"{name}.zip" for name in _stage_names(matter)]
    present = await asyncio.to_thread(lambda: [p for p in candidates if p.is_file()])
    return present


async def package_archive(matter: Matter, name: str) -> Path:
    """The zip called ``name`` of ``matter``'s production stages. Raises NotFound."""
    for path in await package_archives(matter):
        if path.name == name:
            return path
    raise NotFound(f"matter {matter.id} has no production package {name}")
