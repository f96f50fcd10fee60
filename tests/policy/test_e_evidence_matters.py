"""The e-Evidence worked examples as matters (docs/legal-e-evidence.md): the
enforcing state's answer, or its silence, decided by the policy as a follow-up
(``enforcing_state_answered``), and an EU order kept confidential."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.errors import InvalidInput, Refused
from letterlock.services.legal.matters import LegalService

from .harness import make_request
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
    received_at=SERVED, served_at=SERVED, instrument="eu-epoc",
    categories=["subscriber", "content"],
    issuer={"country": "IT", "authority": "court", "name": "Tribunale di Milano"},
    offence={"max_penalty_years": 5, "country": "IT"})
NON_RESIDENT = {BOB: {"residence": "BE"}}


def _items(package: str) -> list[str]:
    manifest = json.loads((Path(package) / "manifest.json").read_text())
    return sorted(i["category"] for i in manifest["items"])


async def _waiting(app: App, legal: LegalService) -> str:
    await add_bob(app, "eu-dublin")
    matter = await legal.file(EPOC, "counsel", NON_RESIDENT)
    first = await legal.decide(matter.id, "counsel")
    assert first.state == "waiting"
    assert first.package is not None and _items(first.package) == ["subscriber"]
    return matter.id


async def test_window_passed_without_a_ground_the_content_is_produced(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    matter_id = await _waiting(app, eu_legal)
    clock.now = datetime(2026, 9, 5, 9, 0, tzinfo=UTC)
    with pytest.raises(Refused, match="runs until 2026-09-11T09:00:00Z"):
        await eu_legal.enforcing_state_answered(matter_id, "counsel", answered=False)

    clock.now = datetime(2026, 9, 11, 9, 30, tzinfo=UTC)
    done = await eu_legal.enforcing_state_answered(matter_id, "counsel", answered=False)
    assert done.state == "executed"
    assert done.decision is not None
    content = done.decision.finding(BOB, "content")
    assert content.outcome == "disclose"
    assert content.policies[0] == "L16-15-epoc-enforcing-state-silent"
    assert not done.overridden  # the policy decided, not a human override
    assert done.package is not None and done.package.endswith("-stage2")
    assert _items(done.package) == ["content"]
    assert all(h.released_at == clock.now for h in done.holds)
    assert not [d for d in done.decision.deadlines if d.kind == "enforcing-state-objection"]


async def test_refusal_ground_rejects_the_held_content_r14(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    matter_id = await _waiting(app, eu_legal)
    with pytest.raises(InvalidInput, match="refusal ground 'politics'"):
        await eu_legal.enforcing_state_answered(matter_id, "counsel",
                                                refusal_grounds=["politics"])
    clock.now = datetime(2026, 9, 6, 12, 0, tzinfo=UTC)
    done = await eu_legal.enforcing_state_answered(matter_id, "counsel",
                                                   refusal_grounds=["ne-bis-in-idem"])
    assert done.state == "executed"
    assert done.decision is not None
    content = done.decision.finding(BOB, "content")
    assert (content.outcome, content.reasons) == ("reject", ("R14",))
    assert content.policies[0] == "L16-15-epoc-enforcing-state-refused"
    assert done.decision.finding(BOB, "subscriber").outcome == "disclose"  # kept
    assert done.decision.transparency == "non-content"
    assert done.facts[BOB].enforcing_state is not None
    assert done.facts[BOB].enforcing_state.refusal_grounds == ("ne-bis-in-idem",)
    assert all(h.released_at == clock.now for h in done.holds)
    with pytest.raises(Refused):  # decided for good now
        await eu_legal.enforcing_state_answered(matter_id, "counsel", answered=False)

    # The response to the issuing authority names the ground in plain words.
    letters = await eu_legal.issue_letters(matter_id, "counsel", ("response",))
    html = (await eu_legal.letter_file(matter_id, letters[0].id, "letter.html")).decode()
    assert "R14: The enforcing State raised a ground for refusal." in html
    assert "Ground raised on 6 September 2026, 12:00 UTC: producing the data would be " \
           "contrary to ne bis in idem" in html
    assert "(art. 12(1)(c))" in html

    await app.audit.flush()  # type: ignore[attr-defined]
    events = clear_events_of(log_records(app.config.control_dir), matter_id)
    answered = [e for e in events if e.type == EventType.LEGAL_MATTER_EVALUATED
                and ("enforcing_state", "ne-bis-in-idem") in tuple(e.details)]
    assert len(answered) == 1 and answered[0].actor == "counsel"


async def test_answer_before_the_first_decision_changes_the_recommendation(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    await add_bob(app, "eu-dublin")
    matter = await eu_legal.file(EPOC, "counsel", NON_RESIDENT)
    clock.now += timedelta(days=2)
    again = await eu_legal.enforcing_state_answered(matter.id, "counsel")  # no grounds
    assert again.state == "evaluated"
    assert again.recommendation.finding(BOB, "content").outcome == "disclose"
    done = await eu_legal.decide(matter.id, "counsel")
    assert done.state == "executed" and done.package is not None
    assert _items(done.package) == ["content", "subscriber"]


async def test_only_for_european_production_orders(app: App, eu_legal: LegalService) -> None:
    await add_bob(app, "eu-dublin")
    pr = make_request(received_at=SERVED, served_at=SERVED, instrument="eu-epoc-pr",
                      action="preserve", categories=["content"],
                      issuer={"country": "IT", "authority": "prosecutor"})
    matter = await eu_legal.file(pr, "counsel", NON_RESIDENT)
    with pytest.raises(Refused, match="not a European Production Order"):
        await eu_legal.enforcing_state_answered(matter.id, "counsel")


async def test_confidential_eu_order_no_notice_until_the_authority_asks(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    # Worked example 6: the issuing authority asked for confidentiality until 1 Oct.
    await add_bob(app, "eu-dublin")
    secret = {**EPOC, "categories": ["subscriber"], "gag": {"until": "2026-10-01"}}
    matter = await eu_legal.file(secret, "counsel", {BOB: {"residence": "IT"}})
    done = await eu_legal.decide(matter.id, "counsel")
    assert done.state == "executed" and done.package is not None
    assert [n.due_at for n in done.notices] == [None]  # written, due at no date
    await app.audit.flush()  # type: ignore[attr-defined]
    assert clear_events_of(log_records(app.config.control_dir), matter.id) == []  # sealed
    clock.now = datetime(2026, 10, 2, tzinfo=UTC)  # the confidentiality has ended
    assert (await eu_legal.tick()).notices_sent == 0
    assert await eu_legal.notices_for(BOB) == []
    informed = await eu_legal.inform_requested(matter.id, "counsel")
    assert informed.state == "notified"
    assert len(await eu_legal.notices_for(BOB)) == 1
