"""Regression (issue 14, point 4): a non-disclosure order that was renewed or
extended could not be recorded, so at the old end the user notice went out on the
next tick and the audit log revealed the matter's sealed events on its own, tipping
off the user while the extended order still forbade it. ``extend_gag`` records the
new end: notices wait for it and the sealed events are revealed only then."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.errors import InvalidInput
from letterlock.http.legal_api import OperatorIdentity, make_legal_router
from letterlock.services.legal.matters import LegalService

from .harness import make_request
from .matter_support import Clock, add_bob, clear_events_of, clock, legal, log_records

__all__ = ["clock", "legal"]

BOB = "bob@example.test"
FIRST_END = datetime(2025, 6, 1, tzinfo=UTC)
NEW_END = datetime(2025, 12, 1, tzinfo=UTC)


async def _readable(app: App, matter: str) -> list[EventType]:
    await app.audit.flush()  # type: ignore[attr-defined]
    return [e.type for e in clear_events_of(log_records(app.config.control_dir), matter)]


async def test_extended_gag_stops_the_automatic_reveal_and_notice(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    request = make_request(categories=["subscriber"], gag={"until": "2025-06-01T00:00:00Z"})
    matter = await legal.file(request, "counsel")
    decided = await legal.decide(matter.id, "counsel")
    assert [n.due_at for n in decided.notices] == [FIRST_END]
    assert await _readable(app, matter.id) == []  # sealed while the order holds

    with pytest.raises(InvalidInput):
        await legal.extend_gag(matter.id, "counsel", datetime(2025, 1, 1, tzinfo=UTC))
    extended = await legal.extend_gag(matter.id, "counsel", NEW_END)
    assert [n.due_at for n in extended.notices] == [NEW_END]

    # Past the first end: no notice, and the log reveals nothing on its own.
    clock.now = datetime(2025, 7, 1, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 0
    assert await app.audit.reveal_due("log", clock.now) == []  # type: ignore[attr-defined]
    assert await legal.notices_for(BOB) == []
    assert await _readable(app, matter.id) == []

    # Past the new end: the notice goes out and the events are revealed.
    clock.now = datetime(2025, 12, 2, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 1
    assert await app.audit.reveal_due("log", clock.now)  # type: ignore[attr-defined]
    shown = await _readable(app, matter.id)
    assert EventType.LEGAL_GAG_EXTENDED in shown and EventType.LEGAL_NOTICE_SENT in shown


async def test_gag_extended_to_no_end_waits_for_the_lift(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    request = make_request(categories=["subscriber"], gag={"until": "2025-06-01T00:00:00Z"})
    matter = await legal.file(request, "counsel")
    await legal.decide(matter.id, "counsel")
    extended = await legal.extend_gag(matter.id, "counsel", None)
    assert [n.due_at for n in extended.notices] == [None]
    clock.now = datetime(2030, 1, 1, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 0
    assert await app.audit.reveal_due("log", clock.now) == []  # type: ignore[attr-defined]
    lifted = await legal.lift_gag(matter.id, "counsel")
    assert lifted.notices[0].sent_at == clock.now
    assert EventType.LEGAL_GAG_EXTENDED in await _readable(app, matter.id)


async def test_extend_gag_over_the_http_api(app: App, legal: LegalService) -> None:
    await add_bob(app)
    request = make_request(categories=["subscriber"], gag={"until": "2025-06-01T00:00:00Z"})
    matter = await legal.file(request, "counsel")
    await legal.decide(matter.id, "counsel")
    api = FastAPI()
    api.include_router(make_legal_router(lambda: legal,
                                         lambda: OperatorIdentity("lee", "legal")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://test") as c:
        url = f"/api/legal/matters/{matter.id}/extend-gag"
        assert (await c.post(url, json={})).status_code == 422
        assert (await c.post(url, json={"until": "someday"})).status_code == 422
        ok = await c.post(url, json={"until": "2025-12-01T00:00:00Z"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["notices"][0]["due_at"] == "2025-12-01T00:00:00Z"
