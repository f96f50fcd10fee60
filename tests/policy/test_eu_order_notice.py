"""Regression (issue 17, point 10): accepting hold-enforcing-state on a European
Production Order sent the user notice at once and marked the matter notified, so it
could no longer be decided when the enforcing state's window passed. Now the matter
waits (no notice, decidable again), and the user notice of an EU order follows
Regulation 2023/1543 art. 13: the issuing authority informs the person; the provider
keeps the order confidential and tells the user only when the authority asks it to,
which the operator records (``inform_requested``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.errors import Refused
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matters import LegalService

from .harness import C18, L16, Decide, make_facts, make_request, outcome
from .matter_support import (
    Clock,
    add_bob,
    clear_events_of,
    clock,
    eu_legal,
    log_records,
)

__all__ = ["clock", "eu_legal"]

BOB = "bob@example.test"
SERVED = "2026-09-01T09:00:00Z"
EPOC = make_request(
    received_at=SERVED, served_at=SERVED, instrument="eu-epoc", categories=["content"],
    issuer={"country": "IT", "authority": "court", "name": "Tribunale di Milano"},
    offence={"max_penalty_years": 5, "country": "IT"})
HELD_FACTS = {BOB: {"residence": "BE"}}  # the person is not in the issuing state
LOCAL_FACTS = {BOB: {"residence": "IT"}}  # offence and person both in Italy: no hold


async def _decided(app: App, legal: LegalService, request: dict[str, Any],
                   facts: dict[str, Any]) -> Matter:
    """Bob in Dublin, the request filed with ``facts`` and its recommendation accepted."""
    await add_bob(app, "eu-dublin")
    matter = await legal.file(request, "counsel", facts)
    return await legal.decide(matter.id, "counsel")


@pytest.mark.parametrize("profile", [L16, C18])
def test_eu_order_notice_waits_for_the_issuing_authority(decide: Decide,
                                                         profile: str) -> None:
    d = decide(profile, EPOC, make_facts(bob={"location": "IE", "residence": "BE"}),
               operator="IE")
    assert outcome(d, "content")["outcome"] == "hold-enforcing-state"
    assert d["user_notice"] == {"when": "on-authority-request", "not_before": None}
    assert not [x for x in d["deadlines"] if x["kind"] == "user-notice"]


@pytest.mark.parametrize("profile", [L16, C18])
def test_us_order_notice_is_unchanged(decide: Decide, profile: str) -> None:
    d = decide(profile, make_request(), make_facts(bob={"location": "US"}))
    assert d["user_notice"]["when"] == "before-disclosure"


async def test_hold_enforcing_state_is_not_notified_and_stays_decidable(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    await add_bob(app, "eu-dublin")
    matter = await eu_legal.file(EPOC, "counsel", HELD_FACTS)
    assert matter.recommendation.finding(BOB, "content").outcome == "hold-enforcing-state"

    held = await eu_legal.decide(matter.id, "counsel")
    assert held.state == "waiting"
    assert held.notices == () and held.package is None
    assert await eu_legal.notices_for(BOB) == []
    clock.now += timedelta(days=5)
    assert (await eu_legal.tick()).notices_sent == 0
    with pytest.raises(Refused):
        await eu_legal.inform_requested(matter.id, "counsel")  # not while waiting

    # The window passes without a ground for refusal: the follow-up decision.
    clock.now = datetime(2026, 9, 11, 10, 0, tzinfo=UTC)
    done = await eu_legal.decide(matter.id, "counsel", override="disclose",
                                 justification="enforcing state raised no ground for "
                                               "refusal within 10 days")
    assert done.state == "executed" and done.package is not None
    assert done.decision is not None
    assert done.decision.finding(BOB, "content").outcome == "disclose"
    # Confidential: the notice is written but not due until the authority asks.
    assert len(done.notices) == 1 and done.notices[0].due_at is None
    clock.now += timedelta(days=400)
    assert (await eu_legal.tick()).notices_sent == 0
    assert await eu_legal.notices_for(BOB) == []

    informed = await eu_legal.inform_requested(matter.id, "counsel")
    assert informed.state == "notified"
    assert [n.sent_at for n in informed.notices] == [clock.now]
    assert len(await eu_legal.notices_for(BOB)) == 1
    await app.audit.flush()  # type: ignore[attr-defined]
    kinds = [e.type for e in clear_events_of(log_records(app.config.control_dir), matter.id)]
    assert kinds.count(EventType.LEGAL_NOTICE_REQUESTED) == 1
    assert kinds.index(EventType.LEGAL_NOTICE_REQUESTED) < kinds.index(
        EventType.LEGAL_NOTICE_SENT)
    with pytest.raises(Refused):
        await eu_legal.inform_requested(matter.id, "counsel")  # nothing left to send


async def test_enforcing_state_objection_is_a_follow_up_decision(
        app: App, eu_legal: LegalService) -> None:
    matter = await _decided(app, eu_legal, EPOC, HELD_FACTS)
    refused = await eu_legal.decide(matter.id, "counsel", override="reject",
                                    justification="enforcing state objected (R14)")
    assert refused.state == "executed" and refused.package is None
    assert await eu_legal.notices_for(BOB) == []
    with pytest.raises(Refused):
        await eu_legal.decide(matter.id, "counsel")  # decided for good now


async def test_eu_order_without_hold_is_executed_but_user_not_told(
        app: App, eu_legal: LegalService) -> None:
    done = await _decided(app, eu_legal, EPOC, LOCAL_FACTS)
    assert done.recommendation.finding(BOB, "content").outcome == "disclose"
    assert done.state == "executed" and done.package is not None
    assert await eu_legal.notices_for(BOB) == []


async def test_inform_requested_only_for_eu_orders(app: App, eu_legal: LegalService) -> None:
    local = make_request(issuer={"country": "IE"}, instrument="foreign-order",
                         offence={"country": "IE"})
    matter = await _decided(app, eu_legal, local, {})
    with pytest.raises(Refused):
        await eu_legal.inform_requested(matter.id, "counsel")


async def test_lifting_a_gag_on_an_eu_order_does_not_tell_the_user(
        app: App, eu_legal: LegalService) -> None:
    gagged = {**EPOC, "gag": {"until": "2026-12-01T00:00:00Z"}}
    matter = await _decided(app, eu_legal, gagged, LOCAL_FACTS)
    assert matter.recommendation.user_notice.when == "on-authority-request"
    lifted = await eu_legal.lift_gag(matter.id, "counsel")
    assert [n.sent_at for n in lifted.notices] == [None]
    informed = await eu_legal.inform_requested(matter.id, "counsel")
    assert informed.state == "notified"
