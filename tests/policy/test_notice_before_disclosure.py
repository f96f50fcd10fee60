"""Regression (issue 14, point 5): a "before-disclosure" decision logged the production
before the user notice (the notice was sent after the package was written), and the
notice said "we did not hand over anything we could read" when readable subscriber
and traffic data had gone out. Now the notice is sent, and logged, before the
production; it names in plain words what went out, when, under what, and what the
user can do."""

from __future__ import annotations

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.services.legal.matters import LegalService
from letterlock.storage.legal_sqlite import LegalStore
from letterlock.storage.models import Region

from .harness import make_request
from .matter_support import (
    Clock,
    add_bob,
    clear_events_of,
    clock,
    legal,
    log_records,
    make_service,
)

__all__ = ["clock", "legal"]

BOB = "bob@example.test"
WARRANT = make_request(categories=["subscriber", "traffic", "content"],
                       issuer={"name": "S.D.N.Y."})


async def test_before_disclosure_notice_is_logged_before_the_production(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    matter = await legal.file(WARRANT, "counsel")
    assert matter.recommendation.user_notice.when == "before-disclosure"
    done = await legal.decide(matter.id, "counsel")
    assert done.package is not None
    assert done.state == "notified"
    assert [n.sent_at for n in done.notices] == [clock.now]
    await app.audit.flush()  # type: ignore[attr-defined]
    kinds = [e.type for e in clear_events_of(log_records(app.config.control_dir), matter.id)]
    assert kinds.count(EventType.LEGAL_NOTICE_SENT) == 1
    assert kinds.count(EventType.LEGAL_PRODUCTION_EXECUTED) == 1
    assert kinds.index(EventType.LEGAL_MATTER_DECIDED) \
        < kinds.index(EventType.LEGAL_NOTICE_SENT) \
        < kinds.index(EventType.LEGAL_PRODUCTION_EXECUTED)
    # Nothing else happens twice (the production is not made again by a tick).
    assert (await legal.tick()).notices_sent == 0


async def test_notice_says_in_plain_words_what_went_out(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(WARRANT, "counsel")
    await legal.decide(matter.id, "counsel")
    [notice] = await legal.notices_for(BOB)
    text = notice.text
    assert "did not hand over anything we could read" not in text
    assert "nothing we handed over can be read" not in text
    assert "a search warrant (United States)" in text
    assert "a court (S.D.N.Y.), in US" in text
    assert "What we are handing over, right after this notice, on 15 January 2025" in text
    for words in ("subscriber data:", "traffic data:", "content: your messages as sealed "
                  "ciphertext only"):
        assert words in text
    assert "The subscriber data and traffic data we hand over can be read" in text
    assert "Ask a lawyer" in text
    assert "postmaster@example.test" in text  # the contact when none is configured
    assert "We know of no deadline for challenging it" in text


async def test_notice_names_what_was_refused_and_readable_nothing(
        app: App, legal: LegalService) -> None:
    """A subpoena for content is refused (beyond its reach): the notice says only
    the subscriber data went out, and that content was refused."""
    await add_bob(app)
    subpoena = make_request(instrument="us-subpoena", categories=["subscriber", "content"])
    matter = await legal.file(subpoena, "counsel")
    await legal.decide(matter.id, "counsel")
    [notice] = await legal.notices_for(BOB)
    assert "  - subscriber data: your address" in notice.text
    assert "  - content: refused." in notice.text
    assert "The subscriber data we hand over can be read" in notice.text


async def test_notice_gives_the_challenge_deadline_when_known(
        app: App, clock: Clock) -> None:
    """Under the CLOUD Act profile a warrant for data in the UK (an agreement in
    force), where the legal team asserts a conflict with UK law, is challenged within
    14 days of service: nothing goes out and nobody is told while the matter waits;
    once subscriber data is ordered out, the notice names the challenge date."""
    await app.add_region(Region("gb-london", "GB"))
    store = LegalStore(app.config.control_dir, fsync=False)
    try:
        service = make_service(app, store, clock, profile="cloud-act-2018")
        await add_bob(app, "gb-london")
        matter = await service.file(make_request(categories=["subscriber", "content"]),
                                    "counsel", {BOB: {"conflict_with": ["GB"],
                                                      "residence": "GB"}})
        assert matter.recommendation.finding(BOB, "content").outcome == "challenge"
        waiting = await service.decide(matter.id, "counsel")
        assert waiting.state == "waiting" and waiting.notices == ()  # nothing went out
        # The court upholds the order for subscriber data: a follow-up decision.
        await service.decide(matter.id, "counsel", override="disclose",
                             categories=["subscriber"], justification="motion denied")
        [notice] = await service.notices_for(BOB)
        assert "The time to challenge this request runs until 29 January 2025" in notice.text
        assert "content: not handed over: we are challenging the request." in notice.text
        assert "  - subscriber data: your address" in notice.text
    finally:
        await store.close()
