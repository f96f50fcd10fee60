"""Regression (issue 14, point 1): a gag implied by the instrument (a National
Security Letter filed with ``"gag": null``) is a gag everywhere secrecy is decided:
the matter's audit events are sealed, the target's privacy center shows nothing of
it, the notice waits, and lifting the order tells the user and reveals the log."""

from __future__ import annotations

from datetime import UTC, datetime

from letterlock.app import App
from letterlock.policy import load_jurisdictions, parse_request
from letterlock.services.legal.matters import LegalService
from letterlock.services.transparency.access_feed import AccessFeed

from .harness import make_request
from .matter_support import Clock, add_bob, clear_events_of, clock, legal, log_records

__all__ = ["clock", "legal"]

NSL = make_request(instrument="us-nsl", categories=["subscriber"], gag=None,
                   issuer={"authority": "administrative", "name": "FBI"})


def test_effective_gag_of_an_nsl_without_gag_field_is_indefinite() -> None:
    jurisdictions = load_jurisdictions()
    gag = jurisdictions.effective_gag(parse_request(NSL))
    assert gag is not None and gag.indefinite
    assert jurisdictions.effective_gag(parse_request(make_request())) is None


async def test_implied_gag_nsl_is_sealed_and_liftable(app: App, legal: LegalService,
                                                      clock: Clock) -> None:
    await add_bob(app)
    matter = await legal.file(NSL, "counsel")
    decided = await legal.decide(matter.id, "counsel")
    assert decided.decision is not None
    assert decided.decision.finding("bob@example.test", "subscriber").outcome == "disclose"
    assert decided.notices and decided.notices[0].due_at is None  # waits for the lift
    await app.audit.flush()  # type: ignore[attr-defined]

    # Nothing readable about the matter in the log, nothing in bob's privacy center.
    assert clear_events_of(log_records(app.config.control_dir), matter.id) == []
    feed = AccessFeed(app.config.control_dir / "audit")
    page = await feed.page_async("bob@example.test")
    assert [e for e in page.events if e["event"].get("matter") == matter.id] == []

    clock.now = datetime(2030, 1, 1, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 0  # an indefinite order never expires

    lifted = await legal.lift_gag(matter.id, "counsel")
    assert lifted.notices[0].sent_at == clock.now
    await app.audit.flush()  # type: ignore[attr-defined]
    shown = [e.type.value for e in clear_events_of(log_records(app.config.control_dir),
                                                    matter.id)]
    assert "legal:production:executed" in shown and "legal:gag:lifted" in shown
    feed.close()


def test_report_counts_the_implied_gag_of_an_nsl() -> None:
    """The report (and the canary's "indefinite gag" statement) see the same order."""
    from letterlock.services.transparency.report import facts_from_matter

    facts = facts_from_matter("M-1", NSL, {"bob@example.test": {"location": "US"}},
                              {"targets": {}, "transparency": "non-content"})
    assert facts.gag == "indefinite"
