"""Prometheus metrics, counted across every process of a server.

Counters and histograms are moved by the log events themselves
(:mod:`~letterlock.services.operations.log_events`): :class:`MetricsHandler` listens
on the events logger, so a call site that logs an event has counted it too, and a
metric cannot drift from the log. The values live in prometheus-client's
multiprocess files under ``HOME/control/run/metrics/`` (``PROMETHEUS_MULTIPROC_DIR``,
inherited by the worker processes), so the main process's ``/metrics`` adds up the
IMAP and MX workers with its own. The main process empties that directory when it
starts (Prometheus takes a restart as a counter reset) and drops a dead worker's
live gauges when it is replaced.

What only the main process knows is read when scraped (:func:`gather_state`): the
outbound queue (its size and oldest message, from the spool files of every region),
legal matters by state and deadline, and the audit log's size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from letterlock.services.operations.log_events import EVENTS_LOGGER, Fields, LogEvent

METRICS_DIR = "metrics"
"""Under HOME/control/run: the multiprocess value files."""
ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DUE_SOON = timedelta(days=7)
_SEAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 1.0, 5.0)


class Instruments:
    """The counters, gauges and histograms the events move (not registered globally:
    the multiprocess collector reads their files)."""

    def __init__(self) -> None:
        self.connections = Counter(
            "letterlock_connections", "Connections accepted, by listener",
            ["proto"], registry=None)
        self.open_connections = Gauge(
            "letterlock_connections_open", "Connections open now, by listener",
            ["proto"], registry=None, multiprocess_mode="livesum")
        self.logins = Counter(
            "letterlock_logins", "Password logins, by protocol and result (ok, failed, "
            "refused: too many checks waiting)", ["proto", "result"], registry=None)
        self.accepted = Counter(
            "letterlock_messages_accepted", "Messages accepted (SMTP 250), by listener",
            ["listener"], registry=None)
        self.stored = Counter(
            "letterlock_deliveries", "Copies delivered into local mailboxes (one per "
            "recipient), by result (stored, failed)", ["result"], registry=None)
        self.outbound = Counter(
            "letterlock_outbound", "Outbound queue: messages queued and delivery attempts "
            "per recipient, by result (queued, sent, deferred, failed, bounced, "
            "delay-noticed)",
            ["result"], registry=None)
        self.tls_failures = Counter(
            "letterlock_outbound_tls_failures", "Outbound TLS short of a recipient "
            "domain's policy, or its policy unobtainable, by policy (sts, tlsa) and "
            "RFC 8460 result type (the log line names the domain)", ["policy", "result"],
            registry=None)
        self.rejections = Counter(
            "letterlock_smtp_rejections", "SMTP replies 4xx/5xx, by listener and code",
            ["listener", "code"], registry=None)
        self.refusals = Counter(
            "letterlock_client_refusals", "Clients held to a limit, by limit",
            ["limit"], registry=None)
        self.seal = Histogram(
            "letterlock_seal_seconds", "Time to seal one message (summary, key agreement, "
            "AES-GCM), seconds", registry=None, buckets=_SEAL_BUCKETS)
        self.unseal = Histogram(
            "letterlock_unseal_seconds", "Time to open one sealed message, seconds",
            registry=None, buckets=_SEAL_BUCKETS)
        self.worker_exits = Counter(
            "letterlock_worker_exits", "Worker processes that ended unexpectedly "
            "(and were restarted)", registry=None)
        self.audit_recorded = Counter(
            "letterlock_audit_events", "Audit log events recorded, by source "
            "(legal, admin, account, log)", ["source"], registry=None)


def _field(record: logging.LogRecord, name: str) -> Any:
    fields: dict[str, Any] = getattr(record, "ll_fields", {})
    found = fields.get(name)
    if found is not None:
        return found
    bound: Fields = getattr(record, "ll_context", ())
    for key, value in bound:
        if key == name:
            return value
    return None


class MetricsHandler(logging.Handler):
    """Moves the instruments for each event record (no formatting, no output)."""

    def __init__(self, instruments: Instruments) -> None:
        super().__init__(logging.DEBUG)
        self._m = instruments
        self._children: dict[tuple[object, ...], Any] = {}
        self._on: dict[str, Callable[[logging.LogRecord], None]] = {
            LogEvent.SMTP_CONNECTED: self._connected,
            LogEvent.IMAP_CONNECTED: self._connected,
            LogEvent.SMTP_DISCONNECTED: self._disconnected,
            LogEvent.IMAP_DISCONNECTED: self._disconnected,
            LogEvent.LOGIN_OK: lambda r: self._child(self._m.logins, _field(r, "proto"),
                                                     "ok").inc(),
            LogEvent.LOGIN_FAILED: lambda r: self._child(
                self._m.logins, _field(r, "proto"), "failed").inc(),
            LogEvent.MESSAGE_ACCEPTED: lambda r: self._child(
                self._m.accepted, _field(r, "proto")).inc(),
            LogEvent.MESSAGE_STORED: lambda r: self._child(self._m.stored, "stored").inc(),
            LogEvent.MESSAGE_NOT_STORED: lambda r: self._child(self._m.stored,
                                                               "failed").inc(),
            LogEvent.OUTBOUND_QUEUED: lambda r: self._child(self._m.outbound,
                                                            "queued").inc(),
            LogEvent.OUTBOUND_SENT: lambda r: self._child(self._m.outbound, "sent").inc(),
            LogEvent.OUTBOUND_DEFERRED: lambda r: self._child(self._m.outbound,
                                                              "deferred").inc(),
            LogEvent.OUTBOUND_FAILED: lambda r: self._child(self._m.outbound,
                                                            "failed").inc(),
            LogEvent.OUTBOUND_BOUNCED: lambda r: self._child(self._m.outbound,
                                                             "bounced").inc(),
            LogEvent.OUTBOUND_DELAY_NOTICE: lambda r: self._child(self._m.outbound,
                                                                  "delay-noticed").inc(),
            LogEvent.TLS_POLICY_FAILURE: lambda r: self._child(
                self._m.tls_failures, _field(r, "policy"), _field(r, "result")).inc(),
            LogEvent.SMTP_REJECTED: lambda r: self._child(
                self._m.rejections, _field(r, "proto"), _field(r, "code")).inc(),
            LogEvent.CLIENT_REFUSED: self._refused,
            LogEvent.SEALED: lambda r: self._m.seal.observe(float(_field(r, "seconds"))),
            LogEvent.UNSEALED: lambda r: self._m.unseal.observe(float(_field(r, "seconds"))),
            LogEvent.WORKER_EXITED: self._worker_exited,
        }

    def _child(self, metric: Any, *labels: object) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*(str(v) for v in labels))
        return child

    def _connected(self, record: logging.LogRecord) -> None:
        proto = _field(record, "proto")
        self._child(self._m.connections, proto).inc()
        self._child(self._m.open_connections, proto).inc()

    def _disconnected(self, record: logging.LogRecord) -> None:
        self._child(self._m.open_connections, _field(record, "proto")).dec()

    def _refused(self, record: logging.LogRecord) -> None:
        self._child(self._m.refusals, _field(record, "limit")).inc()
        if _field(record, "limit") == "password-checks":
            self._child(self._m.logins, _field(record, "proto"), "refused").inc()

    def _worker_exited(self, record: logging.LogRecord) -> None:
        self._m.worker_exits.inc()
        pid = _field(record, "worker_pid")
        if isinstance(pid, int):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call] # its live gauges go with it

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the instruments lock their own values.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "ll_event", None)
        if name is None:
            return
        try:
            action = self._on.get(name)
            if action is not None:
                action(record)
            elif ":" in name and not isinstance(name, LogEvent):  # an audit event
                self._child(self._m.audit_recorded, name.split(":", 1)[0]).inc()
        except Exception:  # a metric must never fail what is being counted
            self.handleError(record)


def metrics_dir(run_dir: Path) -> Path:
    return run_dir / METRICS_DIR


def enable(run_dir: Path, *, main: bool) -> Callable[[], None]:
    """Count events in this process into the multiprocess files under ``run_dir``.
    The main process (``main``) starts from empty files and exports the directory
    to the processes it starts; returns the function that stops counting."""
    directory = metrics_dir(run_dir)
    if main:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    saved_env = os.environ.get(ENV)
    os.environ[ENV] = str(directory)
    saved_class = values.ValueClass
    # prometheus-client picks its value class from the environment when imported;
    # this process may have imported it before the directory was known.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    handler = MetricsHandler(Instruments())
    events = logging.getLogger(EVENTS_LOGGER)
    saved_level = events.level
    events.addHandler(handler)
    events.setLevel(logging.DEBUG)  # debug events carry the seal timings

    def disable() -> None:
        events.removeHandler(handler)
        events.setLevel(saved_level)
        values.ValueClass = saved_class
        if saved_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved_env

    return disable


# -- state read when scraped (main process) ------------------------------------------


@dataclass(frozen=True)
class State:
    queue_messages: int = 0
    queue_oldest_s: float = 0.0
    matters_by_state: dict[str, int] = field(default_factory=dict)
    matters_due_soon: int = 0
    matters_overdue: int = 0
    next_deadline_s: float | None = None
    audit_entries: int | None = None
    audit_bytes: int = 0


def _queue_files(home: Path) -> tuple[int, float]:
    """Messages in the outbound spools of every region, and the age of the oldest
    (its message file is written once, when it is queued)."""
    now = time.time()
    count, oldest = 0, 0.0
    for path in home.glob("regions/*/outbound/*.msg"):
        with contextlib.suppress(OSError):
            oldest = max(oldest, now - path.stat().st_mtime)
            count += 1
    return count, oldest


def _dir_bytes(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


@dataclass(frozen=True)
class MatterView:
    """What the metrics need of a legal matter."""

    state: str
    next_due: datetime | None


async def gather_state(home: Path, matters: Callable[[], Awaitable[Sequence[MatterView]]],
                       audit_entries: Callable[[], int | None],
                       run: Callable[[Callable[[], Any]], Awaitable[Any]]) -> State:
    """Read the queue, the matters and the audit log (``run`` runs blocking work in
    a thread)."""
    count, oldest = await run(lambda: _queue_files(home))
    by_state: dict[str, int] = {}
    due_soon = overdue = 0
    soonest: datetime | None = None
    now = datetime.now(UTC)
    for matter in await matters():
        by_state[matter.state] = by_state.get(matter.state, 0) + 1
        if matter.state == "closed" or matter.next_due is None:
            continue
        if matter.next_due < now:
            overdue += 1
        elif matter.next_due <= now + DUE_SOON:
            due_soon += 1
        soonest = matter.next_due if soonest is None else min(soonest, matter.next_due)
    audit_bytes: int = await run(lambda: _dir_bytes(home / "control" / "audit"))
    return State(count, oldest, by_state, due_soon, overdue,
                 None if soonest is None else (soonest - now).total_seconds(),
                 audit_entries(), audit_bytes)


class _StateCollector(Collector):
    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._state
        yield GaugeMetricFamily("letterlock_outbound_queue_messages",
                                "Messages in the outbound queue", value=s.queue_messages)
        yield GaugeMetricFamily("letterlock_outbound_queue_oldest_seconds",
                                "Age of the oldest message in the outbound queue, seconds",
                                value=s.queue_oldest_s)
        by_state = GaugeMetricFamily("letterlock_legal_matters", "Legal matters, by state",
                                     labels=["state"])
        for state, count in sorted(s.matters_by_state.items()):
            by_state.add_metric([state], count)
        yield by_state
        due = GaugeMetricFamily("letterlock_legal_matters_due",
                                "Open legal matters with a deadline: overdue, or due "
                                "within 7 days", labels=["when"])
        due.add_metric(["overdue"], s.matters_overdue)
        due.add_metric(["7d"], s.matters_due_soon)
        yield due
        if s.next_deadline_s is not None:
            yield GaugeMetricFamily("letterlock_legal_next_deadline_seconds",
                                    "Seconds until the soonest deadline of an open legal "
                                    "matter (negative: overdue)", value=s.next_deadline_s)
        if s.audit_entries is not None:
            yield GaugeMetricFamily("letterlock_audit_log_entries",
                                    "Entries in the audit log", value=s.audit_entries)
        yield GaugeMetricFamily("letterlock_audit_log_bytes",
                                "Size of the audit log on disk, bytes", value=s.audit_bytes)


def render(run_dir: Path, state: State) -> bytes:
    """The exposition text: every process's counters plus ``state`` (blocking)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
        registry, path=str(metrics_dir(run_dir)))
    registry.register(_StateCollector(state))
    return generate_latest(registry)
