"""Legal matters in the running system: filing with facts from the store, deciding,
holds that keep expunged mail, signed production packages, user notices and gag
expiry, audit events, and the command line on a real HOME."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.cli.main import cli
from letterlock.errors import InvalidInput, MatterOpen, Refused
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.services.legal.matters import LegalService
from letterlock.services.legal.production import verify_package
from letterlock.storage.legal_sqlite import LegalStore

from .harness import make_request

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


@pytest.fixture
async def legal(app: App, clock: Clock, tmp_path: Path) -> AsyncIterator[LegalService]:
    store = LegalStore(app.config.control_dir, fsync=False)
    engine = PolicyEngine(load_profile("location-2016"), load_jurisdictions())
    service = LegalService(store, app.control, app.cells, app.accounts, app.delivery,
                           app.audit, engine, "US", app.config.control_dir / "legal", clock)
    app.mailboxes.add_retention_hook(service.retain)
    yield service
    await store.close()


async def _bob(app: App, region: str = "us-east") -> Any:
    ref, _ = await app.accounts.create("bob@example.test", region, PASSWORD)
    await app.delivery.deliver(MESSAGE, [ref])
    return ref


def _events(app: App) -> list[Any]:
    return list(getattr(app.audit, "events", []))


async def test_file_takes_facts_from_the_store(app: App, legal: LegalService) -> None:
    await _bob(app, "eu-dublin")
    matter = await legal.file(make_request(categories=["content"]), "tester")
    assert matter.state == "evaluated"
    assert matter.facts["bob@example.test"].location == "IE"
    finding = matter.recommendation.finding("bob@example.test", "content")
    assert finding.outcome == "redirect-mlat"
    assert finding.policies == ("L16-13-data-abroad",)


async def test_unknown_account_is_no_data(app: App, legal: LegalService) -> None:
    matter = await legal.file(make_request(), "tester")
    assert matter.recommendation.finding("bob@example.test", "content").outcome == "no-data"


async def test_disclosure_writes_a_signed_package(app: App, legal: LegalService) -> None:
    await _bob(app)
    req = make_request(categories=["subscriber", "traffic", "content"])
    matter = await legal.file(req, "tester")
    decided = await legal.decide(matter.id, "tester")
    assert decided.state == "notified"  # before-disclosure notice delivered
    assert decided.package is not None
    package = Path(decided.package)
    manifest = json.loads((package / "manifest.json").read_text())
    categories = {i["category"] for i in manifest["items"]}
    assert categories == {"subscriber", "traffic", "content"}
    sealed = [i for i in manifest["items"] if i["category"] == "content"]
    assert sealed and b"See you at noon" not in (package / sealed[0]["path"]).read_bytes()
    assert any("operator holds no key" in s for s in manifest["statements"])
    assert any(u["category"] == "content" for u in manifest["unavailable"])
    check = verify_package(package)
    assert check.ok, check.problems
    assert verify_package(package.with_suffix(".zip")).ok

    # Tampering with an item or the manifest is detected.
    (package / sealed[0]["path"]).write_bytes(b"x")
    assert not verify_package(package).ok
    with zipfile.ZipFile(package.with_suffix(".zip")) as zf:
        names = zf.namelist()
    assert "manifest.sig" in names


async def test_only_approved_categories_are_produced(app: App, legal: LegalService) -> None:
    await _bob(app)
    req = make_request(instrument="us-subpoena", categories=["subscriber", "content"])
    matter = await legal.decide((await legal.file(req, "t")).id, "t")
    assert matter.package is not None
    manifest = json.loads((Path(matter.package) / "manifest.json").read_text())
    assert {i["category"] for i in manifest["items"]} == {"subscriber"}


async def test_override_needs_justification_and_is_recorded(app: App,
                                                            legal: LegalService) -> None:
    await _bob(app, "eu-dublin")
    matter = await legal.file(make_request(), "tester")
    with pytest.raises(InvalidInput):
        await legal.decide(matter.id, "tester", override="disclose")
    with pytest.raises(InvalidInput):
        await legal.decide(matter.id, "tester", override="shrug", justification="x")
    decided = await legal.decide(matter.id, "counsel", override="reject",
                                 justification="The warrant names the wrong account.")
    assert decided.overridden
    assert decided.justification == "The warrant names the wrong account."
    assert decided.decision is not None
    finding = decided.decision.finding("bob@example.test", "content")
    assert finding.outcome == "reject"
    assert finding.policies[0] == "override:counsel"
    with pytest.raises(Refused):
        await legal.decide(matter.id, "counsel")
    kinds = [e.type for e in _events(app) if e.matter == matter.id]
    if kinds:  # the interim sink keeps events in memory; the Merkle log does not expose them
        assert EventType.LEGAL_MATTER_OVERRIDDEN in kinds


async def test_hold_keeps_expunged_mail_until_released(app: App, legal: LegalService,
                                                       clock: Clock) -> None:
    ref = await _bob(app)
    req = make_request(instrument="us-preservation", action="preserve")
    matter = await legal.decide((await legal.file(req, "t")).id, "t")
    assert matter.state == "executed"  # no notice while only preserving
    assert len(matter.holds) == 1
    assert matter.holds[0].expires_at == datetime(2025, 4, 15, 9, 0, tzinfo=UTC)

    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    blob_id = msgs[0].blob_id
    cell = app.cells.get(ref.region)
    await app.mailboxes.expunge(session, inbox.id, [m.uid for m in msgs])
    assert await app.mailboxes.messages(session, inbox.id) == []  # gone from the user's view
    assert await cell.blobs.get(blob_id)  # ...but the sealed data is kept

    with pytest.raises(MatterOpen):
        await legal.check_account_free("bob@example.test")

    clock.now = datetime(2025, 4, 16, tzinfo=UTC)
    report = await legal.tick()
    assert report.holds_released == 1
    assert blob_id not in await cell.blobs.list_ids()
    await legal.close(matter.id, "t")
    await legal.check_account_free("bob@example.test")


async def test_gag_expiry_triggers_the_notice(app: App, legal: LegalService,
                                              clock: Clock) -> None:
    await _bob(app)
    req = make_request(categories=["subscriber"], gag={"until": "2025-03-01"})
    matter = await legal.decide((await legal.file(req, "t")).id, "t")
    assert matter.state == "executed"
    assert matter.notices[0].sent_at is None
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    before = len(await app.mailboxes.messages(session, inbox.id))

    assert (await legal.tick()).notices_sent == 0
    clock.now = datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 1
    assert len(await app.mailboxes.messages(session, inbox.id)) == before + 1
    shown = await legal.show(matter.id)
    assert shown.state == "notified"
    assert [n.address for n in await legal.notices_for("bob@example.test")] \
        == ["bob@example.test"]


async def test_list_open_and_due(app: App, legal: LegalService, clock: Clock) -> None:
    await _bob(app)
    preserve = await legal.file(make_request(instrument="us-preservation",
                                             action="preserve"), "t")
    other = await legal.file(make_request(), "t")
    await legal.close(other.id, "t")
    assert [m.id for m in await legal.list_matters(open_only=True)] == [preserve.id]
    clock.now += timedelta(days=1)
    assert [m.id for m in await legal.list_matters(due_within=timedelta(days=100))] \
        == [preserve.id]
    assert await legal.list_matters(due_within=timedelta(days=10)) == []


def test_cli_file_decide_show_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_ITERATIONS", "1")
    home = str(tmp_path / "home")
    runner = CliRunner()

    def ok(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, ["--home", home, *args], input=stdin)
        assert result.exit_code == 0, (args, result.output)
        return str(result.stdout)

    ok("init")
    ok("user", "add", "bob@example.test", "--region", "us-east", "--password-stdin",
       stdin=PASSWORD + "\n")
    req = tmp_path / "req.json"
    req.write_text(json.dumps(make_request(categories=["subscriber"])))
    matter_id = ok("legal", "file", str(req)).strip()
    assert matter_id.startswith("M-")
    listed = json.loads(ok("legal", "list", "--open", "--json"))
    assert [m["id"] for m in listed] == [matter_id]
    bad = runner.invoke(cli, ["--home", home, "legal", "decide", matter_id,
                              "--override", "reject"])
    assert bad.exit_code != 0 and "justification" in bad.stderr
    shown = json.loads(ok("legal", "decide", matter_id, "--accept", "--json"))
    assert shown["state"] == "notified"
    assert "verify" not in shown
    out = ok("legal", "verify-package", shown["package"])
    assert out.startswith("ok: matter " + matter_id)
    assert "closed" in ok("legal", "close", matter_id)
    missing = runner.invoke(cli, ["--home", home, "legal", "show", "M-nope"])
    assert missing.exit_code != 0 and len(missing.stderr.strip().splitlines()) == 1


async def test_lifting_an_indefinite_gag_tells_the_user_and_reveals_the_log(
        app: App, legal: LegalService, clock: Clock) -> None:
    from letterlock.audit.sink import AuditLog

    await _bob(app)
    req = make_request(categories=["subscriber"], gag={"indefinite": True})
    matter = await legal.decide((await legal.file(req, "t")).id, "t")
    assert matter.notices and matter.notices[0].sent_at is None
    clock.now = datetime(2030, 1, 1, tzinfo=UTC)
    assert (await legal.tick()).notices_sent == 0  # an indefinite order never expires
    assert isinstance(app.audit, AuditLog)
    await app.audit.flush()
    sealed = [e for e in await app.audit.sealed_entries() if e.event.matter == matter.id]
    assert sealed, "steps under the order must be logged as commitments"

    lifted = await legal.lift_gag(matter.id, "counsel")
    assert lifted.notices[0].sent_at == clock.now
    assert [n.address for n in await legal.notices_for("bob@example.test")] \
        == ["bob@example.test"]
    await app.audit.flush()
    assert [e for e in await app.audit.sealed_entries() if e.event.matter == matter.id] == []
    with pytest.raises(Refused):
        await legal.lift_gag(matter.id, "counsel")
    # after the lift, steps of the matter are logged in the clear
    await legal.close(matter.id, "counsel")
    await app.audit.flush()
    assert [e for e in await app.audit.sealed_entries() if e.event.matter == matter.id] == []


async def test_lifting_needs_an_order(app: App, legal: LegalService) -> None:
    await _bob(app)
    matter = await legal.file(make_request(categories=["subscriber"]), "t")
    with pytest.raises(Refused):
        await legal.lift_gag(matter.id, "t")


async def test_each_step_of_a_matter_reaches_the_targets_access_feed(
        app: App, legal: LegalService) -> None:
    from letterlock.services.transparency.access_feed import AccessFeed

    await _bob(app)
    matter = await legal.decide((await legal.file(make_request(), "t")).id, "t")
    await app.audit.flush()  # type: ignore[attr-defined]
    page = await AccessFeed(app.config.control_dir / "audit").page_async("bob@example.test")
    kinds = [(e["event"]["type"], e["event"].get("matter")) for e in page.events]
    for step in ("legal:matter:filed", "legal:matter:evaluated", "legal:matter:decided"):
        assert (step, matter.id) in kinds, kinds


async def test_concurrent_ticks_send_a_notice_once(app: App, legal: LegalService,
                                                   clock: Clock) -> None:
    """`serve`'s periodic tick and a `legal tick` command (another process, its own
    store connection) may run at the same moment: the user is told once."""
    await _bob(app)
    req = make_request(categories=["subscriber"], gag={"until": "2025-03-01"})
    await legal.decide((await legal.file(req, "t")).id, "t")
    other_store = LegalStore(app.config.control_dir, fsync=False)
    other = LegalService(other_store, app.control, app.cells, app.accounts, app.delivery,
                         app.audit, PolicyEngine(load_profile("location-2016"),
                                                 load_jurisdictions()),
                         "US", app.config.control_dir / "legal", clock)
    try:
        clock.now = datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC)
        reports = await asyncio.gather(legal.tick(), other.tick(), legal.tick())
    finally:
        await other_store.close()
    assert sum(r.notices_sent for r in reports) == 1
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    assert len(msgs) == 2  # the message from _bob, and one notice


async def test_override_can_be_narrowed_to_a_category_or_target(
        app: App, legal: LegalService) -> None:
    await _bob(app, "eu-dublin")
    req = make_request(categories=["subscriber", "content"])
    matter = await legal.file(req, "tester")
    recommended = matter.recommendation
    with pytest.raises(InvalidInput, match="no finding for category traffic"):
        await legal.decide(matter.id, "counsel", override="challenge", justification="x",
                           categories=["traffic"])
    with pytest.raises(InvalidInput, match=r"no finding for carol@example\.test"):
        await legal.decide(matter.id, "counsel", override="challenge", justification="x",
                           targets=["carol@example.test"])
    with pytest.raises(InvalidInput, match="narrow an override"):
        await legal.decide(matter.id, "counsel", categories=["content"])
    decided = await legal.decide(matter.id, "counsel", override="challenge",
                                 justification="Content needs an Irish order.",
                                 categories=["content"], targets=["Bob@example.test"])
    assert decided.decision is not None
    content = decided.decision.finding("bob@example.test", "content")
    assert content.outcome == "challenge" and content.policies[0] == "override:counsel"
    # The other category keeps what the policy recommended, with its citations.
    assert decided.decision.finding("bob@example.test", "subscriber") == \
        recommended.finding("bob@example.test", "subscriber")
    assert decided.overridden
