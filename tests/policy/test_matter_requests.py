"""Regressions (issue 14, point 6) on what a matter asks for and how it is listed:

- a request's ``date_range`` limits the mail produced to mail received in it;
- the provider's own notices to the user are not produced as the user's mail;
- ``legal list --due`` leaves out deadlines already met and marks overdue ones;
- ``legal file --facts`` takes LEGAL.md's facts format: what the legal team asserts
  (us_person, residence, conflict_with) alone, and facts from the store only when
  they agree with it;
- a request whose id is taken gets a clear error, not a database message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from letterlock.app import App
from letterlock.cli.main import cli
from letterlock.errors import AlreadyExists, InvalidInput
from letterlock.policy import parse_request
from letterlock.services.legal.matters import LegalService

from .harness import make_request
from .matter_support import MESSAGE, PASSWORD, Clock, add_bob, clock, legal

__all__ = ["clock", "legal"]


def _manifest(package: str | None) -> dict[str, Any]:
    assert package is not None
    return dict(json.loads((Path(package) / "manifest.json").read_text()))


def _traffic(package: str | None) -> list[dict[str, Any]]:
    assert package is not None
    return list(json.loads((Path(package) / "traffic" / "bob@example.test.json").read_text()))


# --- date range -------------------------------------------------------------------------


def test_date_range_parses_and_round_trips() -> None:
    request = parse_request(make_request(date_range={"from": "2025-01-01",
                                                     "to": "2025-01-31"}))
    assert request.date_range is not None
    assert request.date_range.start == datetime(2025, 1, 1, tzinfo=UTC)
    assert request.date_range.end == datetime(2025, 2, 1, tzinfo=UTC)  # the whole 31st
    assert parse_request(request.to_json()) == request
    with pytest.raises(InvalidInput, match=r"^date_range"):
        parse_request(make_request(date_range={"from": "2025-02-01", "to": "2025-01-01"}))
    with pytest.raises(InvalidInput, match=r"^date_range\.since: unknown field"):
        parse_request(make_request(date_range={"since": "2025-02-01"}))


async def test_date_range_limits_the_mail_produced(app: App, legal: LegalService) -> None:
    ref = await add_bob(app)  # delivered now: outside the range
    for day in (10, 20):
        await app.delivery.deliver(MESSAGE.replace(b"lunch", f"day {day}".encode()), [ref],
                                   internaldate=datetime(2024, 12, day, tzinfo=UTC))
    request = make_request(categories=["traffic", "content"],
                           date_range={"from": "2024-12-15", "to": "2024-12-31"})
    matter = await legal.decide((await legal.file(request, "counsel")).id, "counsel")
    manifest = _manifest(matter.package)
    assert len([i for i in manifest["items"] if i["category"] == "content"]) == 1
    assert [e["internaldate"] for e in _traffic(matter.package)] == ["2024-12-20T00:00:00Z"]
    assert manifest["date_range"] == {"from": "2024-12-15T00:00:00Z", "to": "2024-12-31"}


# --- the provider's own notices -------------------------------------------------------


async def test_provider_notices_are_not_produced(app: App, legal: LegalService) -> None:
    await add_bob(app)
    first = await legal.decide((await legal.file(make_request(categories=["subscriber"]),
                                                 "counsel")).id, "counsel")
    assert first.notices[0].sent_at is not None  # the notice is in bob's INBOX now
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    assert len(await app.mailboxes.messages(session, inbox.id)) == 2

    second = await legal.decide((await legal.file(
        make_request(categories=["traffic", "content"]), "counsel")).id, "counsel")
    manifest = _manifest(second.package)
    assert len([i for i in manifest["items"] if i["category"] == "content"]) == 1
    assert len(_traffic(second.package)) == 1


# --- list --due -----------------------------------------------------------------------


async def test_list_due_drops_met_deadlines_and_marks_overdue(
        app: App, legal: LegalService, clock: Clock) -> None:
    await add_bob(app)
    gagged = await legal.decide((await legal.file(make_request(
        categories=["subscriber"], gag={"until": "2025-03-01"}), "counsel")).id, "counsel")
    preserve = await legal.decide((await legal.file(make_request(
        instrument="us-preservation", action="preserve"), "counsel")).id, "counsel")
    due = [m.id for m in await legal.list_matters(due_within=timedelta(days=100))]
    assert sorted(due) == sorted([gagged.id, preserve.id])

    # The user was told when the order ended: that deadline is met.
    clock.now = datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC)
    await legal.tick()
    [listed] = await legal.list_matters(due_within=timedelta(days=100))
    assert listed.id == preserve.id and not listed.overdue
    shown = (await legal.show(gagged.id)).to_json()
    assert shown["state"] == "notified" and shown["next_due"] is None
    assert [(d["kind"], d["done"]) for d in shown["deadlines"]] == [("user-notice", True)]

    # The hold's expiry passed and nothing released it yet: overdue, listed at once.
    clock.now = datetime(2025, 4, 20, tzinfo=UTC)
    [listed] = await legal.list_matters(due_within=timedelta(days=0))
    assert listed.id == preserve.id and listed.overdue
    assert listed.to_json()["overdue"] is True
    await legal.close(preserve.id, "counsel")
    assert await legal.list_matters(due_within=timedelta(days=1000)) == []


# --- file --facts and duplicate ids (command line) ------------------------------------


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str]:
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_ITERATIONS", "1")
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    added = runner.invoke(cli, ["--home", home, "user", "add", "bob@example.test",
                                "--region", "us-east", "--password-stdin"],
                          input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    return runner, home


def _file(runner: CliRunner, home: str, tmp_path: Path, request: dict[str, Any],
          facts: dict[str, Any] | None = None) -> Any:
    req = tmp_path / "req.json"
    req.write_text(json.dumps(request))
    args = ["--home", home, "legal", "file", str(req), "--json"]
    if facts is not None:
        path = tmp_path / "facts.json"
        path.write_text(json.dumps(facts))
        args += ["--facts", str(path)]
    return runner.invoke(cli, args)


def test_file_facts_take_legal_md_format(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runner, home = _home(tmp_path, monkeypatch)
    # What the legal team asserts, alone.
    told = _file(runner, home, tmp_path, make_request(),
                 {"bob@example.test": {"us_person": True, "residence": "IE"}})
    assert told.exit_code == 0, told.output
    facts = json.loads(told.stdout)["facts"]["bob@example.test"]
    assert (facts["us_person"], facts["residence"], facts["location"]) == (True, "IE", "US")
    # A whole LEGAL.md entry that agrees with the store.
    whole = {"exists": True, "location": "US", "us_person": False, "residence": "US",
             "hosted_tenant": False, "conflict_with": [], "key_custody": "sealed"}
    agreed = _file(runner, home, tmp_path, make_request(), {"bob@example.test": whole})
    assert agreed.exit_code == 0, agreed.output
    # A fact the store contradicts, or about an address the request does not name.
    wrong = _file(runner, home, tmp_path, make_request(),
                  {"bob@example.test": {**whole, "location": "IE"}})
    assert wrong.exit_code != 0
    assert wrong.stderr.strip().count("\n") == 0
    assert "facts.bob@example.test.location" in wrong.stderr and "US" in wrong.stderr
    stranger = _file(runner, home, tmp_path, make_request(),
                     {"carol@example.test": {"us_person": True}})
    assert stranger.exit_code != 0 and "facts.carol@example.test" in stranger.stderr


def test_duplicate_matter_id_gets_a_clear_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    runner, home = _home(tmp_path, monkeypatch)
    first = _file(runner, home, tmp_path, make_request(id="M-2025-001"))
    assert first.exit_code == 0, first.output
    again = _file(runner, home, tmp_path, make_request(id="M-2025-001"))
    assert again.exit_code != 0
    assert again.stderr.strip() == ("letterlock: legal matter M-2025-001 exists already: "
                                    "give the request another id, or none to have one "
                                    "assigned"), again.stderr


async def test_duplicate_matter_id_is_refused_by_the_service(app: App,
                                                              legal: LegalService) -> None:
    await legal.file(make_request(id="M-2025-002"), "counsel")
    with pytest.raises(AlreadyExists, match="M-2025-002 exists already"):
        await legal.file(make_request(id="M-2025-002"), "counsel")
