"""What the legal console reads beside a matter: its audit trail and its production
packages.

- ``matter_trail``: the audit events of one matter, oldest first, as the operator's
  copy of the log holds them (events under a non-disclosure order included: the
  operator keeps them sealed, the public log shows only commitments). A step of the
  whole matter is logged once per target account; the trail shows it once, with the
  accounts it was logged for.
- ``package_archives``: the signed zip of each stage's production package
  (``<matter>.zip``, ``<matter>-stage2.zip``, ...), as ``production`` wrote them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from letterlock.audit.events import AuditSink, EventFinder
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
    """Under a non-disclosure order: the public log holds only a commitment."""


async def matter_trail(audit: AuditSink, matter_id: str) -> list[TrailEntry]:
    """The audit events of ``matter_id``, oldest first. Raises NotFound when the log
    cannot be searched (a sink that only appends)."""
    if not isinstance(audit, EventFinder):
        raise NotFound("this audit log cannot be searched")
    events = [e for e in await audit.events_since(0) if e.matter == matter_id]
    out: list[TrailEntry] = []
    for event in events:
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
