"""Four-eyes approval of legal decisions (issue 14 point 8): a decision that
discloses content, overrides the recommendation or has a finding flagged for review
is executed only once a second operator approves it; the filer and the proposer may
not; a refusal sends the matter back to be decided; ``four_eyes`` off restores the
one-step decision. Through the service on a real HOME, with the audit log read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import LegalConfig
from letterlock.errors import ConfigError, InvalidInput, Refused
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.services.legal.approval import (
    DEFAULT,
    SelfApproval,
    parse_four_eyes,
)
from letterlock.services.legal.matters import LegalService
from letterlock.storage.legal_sqlite import LegalStore

from .harness import make_request
from .matter_support import Clock, add_bob, clear_events_of, clock, log_records

__all__ = ["clock"]

BOB = "bob@example.test"
WARRANT = make_request(categories=["content"])  # bob in the US: disclose content
SUBPOENA = make_request(instrument="us-subpoena", categories=["subscriber"])


def _service(app: App, store: LegalStore, clock: Clock, four_eyes: frozenset[str],
             profile: str = "location-2016") -> LegalService:
    engine = PolicyEngine(load_profile(profile), load_jurisdictions())
    return LegalService(store, app.control, app.cells, app.accounts, app.delivery,
                        app.audit, engine, "US", app.config.control_dir / "legal", clock,
                        four_eyes=four_eyes)


@pytest.fixture
async def store(app: App) -> AsyncIterator[LegalStore]:
    opened = LegalStore(app.config.control_dir, fsync=False)
    yield opened
    await opened.close()


@pytest.fixture
def legal(app: App, store: LegalStore, clock: Clock) -> LegalService:
    service = _service(app, store, clock, DEFAULT)
    app.mailboxes.add_retention_hook(service.retain)
    return service


def _kinds(app: App, matter: str) -> list[tuple[str, str]]:
    return [(e.type.value, e.actor)
            for e in clear_events_of(log_records(app.config.control_dir), matter)]


def test_on_by_default_and_configurable() -> None:
    assert parse_four_eyes(LegalConfig().four_eyes) == DEFAULT
    assert parse_four_eyes("off") == frozenset()
    assert parse_four_eyes("override, flagged") == {"override", "flagged"}
    with pytest.raises(ConfigError, match="unknown always"):
        parse_four_eyes("content,always")


async def test_content_disclosure_waits_for_a_second_operator(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    matter = await legal.file(WARRANT, "kim")
    proposed = await legal.decide(matter.id, "lee")
    assert proposed.state == "awaiting-approval"
    assert proposed.decision is None and proposed.package is None
    assert not proposed.holds and not proposed.notices
    assert proposed.proposal is not None
    assert proposed.proposal.proposed_by == "lee" and proposed.proposal.needs == ("content",)
    assert proposed.proposal.outcome is None
    # Nothing can decide it again meanwhile.
    with pytest.raises(Refused, match="awaiting-approval"):
        await legal.decide(matter.id, "lee")

    clock.now += timedelta(hours=1)
    approved = await legal.approve(matter.id, "ada")
    assert approved.state == "notified"
    assert approved.package is not None and Path(approved.package).is_dir()
    assert approved.decided_by == "lee"
    assert approved.proposal is not None
    assert (approved.proposal.outcome, approved.proposal.resolved_by) == ("approved", "ada")
    assert approved.proposal.resolved_at == clock.now
    assert approved.decision is not None
    assert approved.decision.finding(BOB, "content").outcome == "disclose"
    assert all(d.done for d in approved.deadlines if d.kind == "production")

    kinds = _kinds(app, matter.id)
    assert kinds[:3] == [("legal:matter:filed", "kim"), ("legal:matter:evaluated", "policy"),
                         ("legal:decision:proposed", "lee")]
    assert ("legal:decision:approved", "ada") in kinds
    assert ("legal:matter:decided", "lee") in kinds
    assert ("legal:production:executed", "ada") in kinds
    # Proposed before anything was executed; approved before the production.
    order = [k for k, _ in kinds]
    assert order.index("legal:decision:proposed") < order.index("legal:decision:approved") \
        < order.index("legal:production:executed")
    assert order.count("legal:production:executed") == 1


async def test_deadlines_stay_visible_while_awaiting_approval(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(gag={"until": "2026-01-15"}), "kim")
    proposed = await legal.decide(matter.id, "lee")
    assert proposed.state == "awaiting-approval"
    assert proposed.deadlines and not any(d.done for d in proposed.deadlines)
    assert proposed.next_due is not None
    due = await legal.list_matters(due_within=timedelta(days=3650))
    assert [m.id for m in due] == [matter.id]
    assert [m.id for m in await legal.list_matters(open_only=True)] == [matter.id]


async def test_the_filer_and_the_proposer_cannot_approve(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(WARRANT, "kim")
    await legal.decide(matter.id, "lee")
    with pytest.raises(SelfApproval, match="lee proposed"):
        await legal.approve(matter.id, "lee")
    with pytest.raises(SelfApproval, match="kim filed"):
        await legal.approve(matter.id, "kim")
    shown = await legal.show(matter.id)
    assert shown.state == "awaiting-approval" and shown.package is None
    assert "legal:decision:approved" not in [k for k, _ in _kinds(app, matter.id)]


async def test_an_override_needs_approval(app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(SUBPOENA, "kim")
    proposed = await legal.decide(matter.id, "lee", override="challenge",
                                  justification="the subpoena names the wrong court")
    assert proposed.state == "awaiting-approval"
    assert proposed.proposal is not None and proposed.proposal.needs == ("override",)
    assert dict(proposed.proposal.override)["outcome"] == "challenge"
    approved = await legal.approve(matter.id, "ada")
    assert approved.state == "waiting"  # a challenge is not final
    assert approved.overridden and approved.decided_by == "lee"
    assert approved.justification == "the subpoena names the wrong court"
    kinds = _kinds(app, matter.id)
    assert ("legal:matter:overridden", "lee") in kinds
    assert ("legal:decision:approved", "ada") in kinds


async def test_a_flagged_finding_needs_approval(app: App, store: LegalStore,
                                                clock: Clock) -> None:
    """An indefinite gag flags challenge-gag: subscriber data only, still reviewed."""
    await add_bob(app)
    legal = _service(app, store, clock, DEFAULT)
    matter = await legal.file(make_request(instrument="us-subpoena",
                                           categories=["subscriber"],
                                           gag={"indefinite": True}), "kim")
    assert any("challenge-gag" in f.flags for _, _, f in matter.recommendation.findings())
    proposed = await legal.decide(matter.id, "lee")
    assert proposed.state == "awaiting-approval"
    assert proposed.proposal is not None and proposed.proposal.needs == ("flagged",)
    # Only what is configured counts: without "flagged" it executes at once.
    other = await legal.file(make_request(instrument="us-subpoena", categories=["subscriber"],
                                          gag={"indefinite": True}), "kim")
    relaxed = _service(app, store, clock, frozenset({"content", "override"}))
    assert (await relaxed.decide(other.id, "lee")).state == "executed"


async def test_non_content_unflagged_decision_executes_at_once(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(SUBPOENA, "kim")
    decided = await legal.decide(matter.id, "kim")
    assert decided.state in ("executed", "notified")
    assert decided.package is not None and decided.proposal is None
    assert "legal:decision:proposed" not in [k for k, _ in _kinds(app, matter.id)]


async def test_four_eyes_off_is_one_step(app: App, store: LegalStore, clock: Clock) -> None:
    await add_bob(app)
    legal = _service(app, store, clock, parse_four_eyes("off"))
    matter = await legal.file(WARRANT, "lee")
    decided = await legal.decide(matter.id, "lee", override="disclose",
                                 justification="as recommended, said twice")
    assert decided.state == "notified" and decided.package is not None
    assert decided.proposal is None


async def test_refusal_sends_the_matter_back_to_be_decided(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    matter = await legal.file(WARRANT, "kim")
    await legal.decide(matter.id, "lee")
    with pytest.raises(InvalidInput, match="reason"):
        await legal.reject_approval(matter.id, "ada", "  ")
    refused = await legal.reject_approval(matter.id, "ada", "ask counsel first")
    assert refused.state == "evaluated" and refused.decision is None
    assert refused.package is None and not refused.notices
    assert refused.proposal is not None
    assert (refused.proposal.outcome, refused.proposal.resolved_by,
            refused.proposal.reason) == ("refused", "ada", "ask counsel first")
    with pytest.raises(Refused, match="not awaiting approval"):
        await legal.approve(matter.id, "ada")
    # Decided again: a new proposal, which another operator approves.
    again = await legal.decide(matter.id, "ada", override="escalate",
                               justification="counsel reviews the warrant")
    assert again.state == "awaiting-approval"
    assert again.proposal is not None and again.proposal.proposed_by == "ada"
    done = await legal.approve(matter.id, "lee")
    assert done.state == "waiting" and done.package is None
    kinds = _kinds(app, matter.id)
    assert ("legal:decision:approval-refused", "ada") in kinds
    assert [k for k, _ in kinds].count("legal:decision:proposed") == 2
    assert ("legal:decision:approved", "lee") in kinds


async def test_approval_is_one_transaction(app: App, store: LegalStore,
                                           clock: Clock, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """A crash before the approval's transaction is durable leaves the proposal
    pending and no trace of the approval; a second approver racing the first is
    refused, and the decision is executed once."""
    await add_bob(app)
    legal = _service(app, store, clock, DEFAULT)
    matter = await legal.file(SUBPOENA, "kim")
    await legal.decide(matter.id, "lee", override="reject", justification="overbroad")
    real_commit = store.commit

    async def crash(txn: object) -> None:
        raise OSError("power lost")
    monkeypatch.setattr(store, "commit", crash)
    with pytest.raises(OSError):
        await legal.approve(matter.id, "ada")
    monkeypatch.setattr(store, "commit", real_commit)
    reopened = _service(app, store, clock, DEFAULT)
    shown = await reopened.show(matter.id)
    assert shown.state == "awaiting-approval"
    assert shown.proposal is not None and shown.proposal.outcome is None
    assert "legal:decision:approved" not in [k for k, _ in _kinds(app, matter.id)]

    first, second = await asyncio.gather(
        reopened.approve(matter.id, "ada"), reopened.approve(matter.id, "joe"),
        return_exceptions=True)
    results = [first, second]
    assert sum(isinstance(r, Refused) for r in results) == 1, results
    kinds = [k for k, _ in _kinds(app, matter.id)]
    assert kinds.count("legal:decision:approved") == 1
    assert kinds.count("legal:matter:decided") == 1
    assert (await reopened.show(matter.id)).state in ("executed", "notified")
