"""Helpers for the audit log tests: a log directory filled with numbered events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.store import MerkleLog, init_log

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def numbered_event(i: int, account: str | None = None) -> AuditEvent:
    return AuditEvent(
        EventType.ADMIN_ACCOUNT_CREATED,
        actor=f"admin{i:04d}",
        at=T0 + timedelta(seconds=i),
        account=account or f"user{i}@example.test",
        details=(("n", str(i)),),
    )


class StepClock:
    """A clock that moves one second per reading: deterministic logging times."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def build_log(directory: Path, count: int, *, batch: int = 1) -> None:
    """``count`` events appended ``batch`` at a time; every head is archived."""
    clock = StepClock()
    init_log(directory, clock=clock)
    with MerkleLog(directory, archive_every=timedelta(0), clock=clock) as log:
        for start in range(0, count, batch):
            log.append([numbered_event(i) for i in range(start, min(count, start + batch))])


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return tmp_path / "audit"
