"""The asyncio sink: durable on return, concurrent callers grouped into batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from letterlock.audit.check import verify_log
from letterlock.audit.events import AuditSink
from letterlock.audit.log import open_reader, open_sink
from letterlock.audit.sink import AuditLog
from letterlock.audit.store import MerkleLog

from .conftest import numbered_event


class CountingLog(MerkleLog):
    batches: list[int]

    def append(self, events):  # type: ignore[no-untyped-def]
        self.batches.append(len(events))
        return super().append(events)


async def test_open_sink_creates_the_log_and_key(logdir: Path) -> None:
    sink = open_sink(logdir)
    as_protocol: AuditSink = sink  # what the services type against
    assert as_protocol is sink
    assert (logdir / "log-key.pem").stat().st_mode & 0o077 == 0
    assert await sink.record(numbered_event(0)) == 0
    assert await sink.record(numbered_event(1)) == 1
    await sink.close()
    sink = open_sink(logdir)  # reopening keeps the key and the events
    assert await sink.record(numbered_event(2)) == 2
    await sink.close()
    with open_reader(logdir) as reader:
        assert reader.size == 3
        assert reader.record(1).event == numbered_event(1)


async def test_concurrent_records_share_batches_and_get_distinct_indices(logdir: Path) -> None:
    open_sink(logdir).log.close()
    log = CountingLog(logdir)
    log.batches = []
    sink = AuditLog(log)
    indices = await asyncio.gather(*(sink.record(numbered_event(i)) for i in range(200)))
    assert sorted(indices) == list(range(200))
    assert sum(log.batches) == 200
    assert len(log.batches) < 200  # grouped: fewer fsync rounds than events
    for i in indices:
        assert log.record(i).event is not None
    await sink.close()
    assert verify_log(logdir).intact


async def test_two_writers_in_one_directory_interleave_safely(logdir: Path) -> None:
    first = open_sink(logdir)
    second = open_sink(logdir)  # e.g. the server and a CLI command
    got = []
    for i in range(10):
        got.append(await first.record(numbered_event(2 * i)))
        got.append(await second.record(numbered_event(2 * i + 1)))
    assert got == list(range(20))
    await first.close()
    await second.close()
    report = verify_log(logdir)
    assert report.intact, report.findings
    assert report.events == 20


async def test_expired_orders_are_revealed_by_the_sink_on_its_own(logdir: Path) -> None:
    from datetime import timedelta

    from letterlock.audit.events import AuditEvent, EventType
    from letterlock.audit.store import init_log

    from .conftest import T0, StepClock

    clock = StepClock()
    init_log(logdir, clock=clock)
    sink = AuditLog(MerkleLog(logdir, clock=clock), reveal_every=0)
    sealed = await sink.record(AuditEvent(
        EventType.LEGAL_HOLD_PLACED, "legal", T0, account="bob@example.test",
        sealed_until=T0 + timedelta(seconds=30)))
    assert sink.log.record(sealed).kind == "commitment"
    clock.now += timedelta(seconds=60)  # the order expires
    await sink.record(numbered_event(1))
    await sink.flush()
    reveals = [r for r in sink.log.iter_records() if r.kind == "reveal"]
    assert [r.reveals for r in reveals] == [sealed]
    assert reveals[0].event is not None and reveals[0].event.actor == "audit-log"
    await sink.close()
    assert verify_log(logdir).reveals_checked == 1
