"""Shared pieces for the legal-matter tests: a settable clock, a LegalService on the
test application's HOME, an account with one message, and the matter's audit trail
as the log holds it (clear events, commitments, reveals)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from letterlock.app import App
from letterlock.audit.log import open_reader
from letterlock.audit.records import LogRecord
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.services.legal.matters import LegalService
from letterlock.storage.legal_sqlite import LegalStore

PASSWORD = "correct horse battery"
MESSAGE = (b"From: alice@example.org\r\nTo: bob@example.test\r\nSubject: lunch\r\n\r\n"
           b"See you at noon.\r\n")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_service(app: App, store: LegalStore, clock: Clock,
                 profile: str = "location-2016", country: str = "US") -> LegalService:
    engine = PolicyEngine(load_profile(profile), load_jurisdictions())
    return LegalService(store, app.control, app.cells, app.accounts, app.delivery,
                        app.audit, engine, country, app.config.control_dir / "legal", clock)


@pytest.fixture
async def legal(app: App, clock: Clock) -> AsyncIterator[LegalService]:
    store = LegalStore(app.config.control_dir, fsync=False)
    service = make_service(app, store, clock)
    app.mailboxes.add_retention_hook(service.retain)
    yield service
    await store.close()


@pytest.fixture
async def eu_legal(app: App, clock: Clock) -> AsyncIterator[LegalService]:
    """A LegalService of an operator seated in Ireland, its clock on 1 Sept 2026 (an
    hour after the EU orders of the tests are served)."""
    clock.now = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
    store = LegalStore(app.config.control_dir, fsync=False)
    service = make_service(app, store, clock, country="IE")
    app.mailboxes.add_retention_hook(service.retain)
    yield service
    await store.close()


async def add_bob(app: App, region: str = "us-east", message: bytes = MESSAGE) -> Any:
    ref, _ = await app.accounts.create("bob@example.test", region, PASSWORD)
    await app.delivery.deliver(message, [ref])
    return ref


def log_records(home_control: Path) -> list[LogRecord]:
    """Every record of the audit log, as a reader sees it."""
    with open_reader(home_control / "audit") as log:
        return list(log.iter_records())


def clear_events_of(records: list[LogRecord], matter: str) -> list[Any]:
    """The readable events about ``matter``: clear events and revealed ones."""
    out = []
    for rec in records:
        event = rec.revealed_event if rec.kind == "reveal" else rec.event
        if event is not None and event.matter == matter:
            out.append(event)
    return out
