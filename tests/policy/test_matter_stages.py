"""Regression (issue 14, point 4): decisions were one-shot. After challenge or
escalate a matter could not be decided again, and an EU order waiting for its
enforcing state placed no hold, so mail deleted in the 10-day window was lost to the
order. Now such outcomes leave the matter waiting; a follow-up decision hands over
only what no earlier stage did (a package of its own); traffic and content that may
yet go out are kept by a hold while the matter waits, released by the final
decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.errors import InvalidInput, Refused
from letterlock.services.legal.matters import LegalService

from .harness import make_request
from .matter_support import PASSWORD, Clock, add_bob, clock, eu_legal, legal

__all__ = ["clock", "eu_legal", "legal"]

BOB = "bob@example.test"
SERVED = "2026-09-01T09:00:00Z"
EPOC = make_request(
    received_at=SERVED, served_at=SERVED, instrument="eu-epoc",
    categories=["subscriber", "content"],
    issuer={"country": "IT", "authority": "court", "name": "Tribunale di Milano"},
    offence={"max_penalty_years": 5, "country": "IT"})


def _items(package: str) -> list[str]:
    manifest = json.loads((Path(package) / "manifest.json").read_text())
    return sorted(i["category"] for i in manifest["items"])


async def test_eu_order_waiting_keeps_deleted_mail_and_produces_it_later(
        app: App, eu_legal: LegalService, clock: Clock) -> None:
    await add_bob(app, "eu-dublin")
    matter = await eu_legal.file(EPOC, "counsel", {BOB: {"residence": "BE"}})
    first = await eu_legal.decide(matter.id, "counsel")
    assert first.state == "waiting"
    # Subscriber data went out at once; content waits, and a hold keeps it.
    assert first.package is not None and _items(first.package) == ["subscriber"]
    [hold] = [h for h in first.holds if h.released_at is None]
    assert hold.expires_at == datetime(2026, 10, 11, 9, 0, tzinfo=UTC)  # window + 30 d

    # Bob deletes his mail inside the window.
    session = await app.accounts.authenticate(BOB, PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    uids = [m.uid for m in await app.mailboxes.messages(session, inbox.id)]
    await app.mailboxes.expunge(session, inbox.id, uids)
    assert await app.mailboxes.messages(session, inbox.id) == []

    with pytest.raises(InvalidInput, match="follow-up decision"):
        await eu_legal.decide(matter.id, "counsel")  # accepting again decides nothing
    clock.now = datetime(2026, 9, 11, 10, 0, tzinfo=UTC)
    done = await eu_legal.decide(matter.id, "counsel", override="disclose",
                                 categories=["content"],
                                 justification="no ground for refusal in 10 days")
    assert done.state == "executed"
    assert done.package is not None and done.package != first.package
    assert done.package.endswith("-stage2")
    assert _items(done.package) == ["content"]  # the held mail, and only the new stage
    assert all(h.released_at == clock.now for h in done.holds)  # final: hold ends
    with pytest.raises(Refused):
        await eu_legal.decide(matter.id, "counsel", override="reject", justification="x")


async def test_escalated_matter_is_decided_again(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(categories=["subscriber", "content"]), "lee")
    escalated = await legal.decide(matter.id, "lee", override="escalate",
                                   justification="needs counsel", categories=["content"])
    assert escalated.state == "waiting"
    assert escalated.package is not None and _items(escalated.package) == ["subscriber"]
    assert len(escalated.notices) == 1 and escalated.notices[0].sent_at == clock.now
    clock.now += timedelta(days=2)
    final = await legal.decide(matter.id, "lee", override="reject",
                               justification="counsel: overbroad", categories=["content"])
    assert final.state == "notified"  # nothing new went out; the user was told
    assert final.package == escalated.package and len(final.notices) == 1
    assert final.decision is not None
    assert final.decision.finding(BOB, "subscriber").outcome == "disclose"
    assert final.decision.finding(BOB, "content").outcome == "reject"
