"""``letterlock legal impact``: every stored matter decided again under another profile
or edited policies, through the command line on a real HOME; nothing stored changes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from letterlock.app import App
from letterlock.cli.main import cli
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.policy.rules import PROFILES_DIR
from letterlock.services.legal.impact import LegalImpact, describe
from letterlock.storage.legal_sqlite import LEGAL_DB, LegalStore

from .harness import C18, L16, make_request
from .matter_support import PASSWORD, Clock, add_bob, clock, log_records, make_service

__all__ = ["clock"]  # the fixture

BOB, CAROL = "bob@example.test", "carol@example.test"
NO_CONTENT = """
// Edited: content is never handed over, whatever the instrument.
@id("X-05-no-content")
@row("5")
@outcome("reject")
@reasons("R03")
permit (principal, action, resource)
when { context.category == "content" };
"""


async def _file_history(app: App, clock: Clock) -> dict[str, str]:
    """The Microsoft-Ireland warrant filed under each shipped profile, an NSL with
    its implied gag, and an Italian European Production Order; one is decided."""
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    await app.accounts.create(CAROL, "us-east", PASSWORD)
    store = LegalStore(app.config.control_dir, fsync=False)
    ids: dict[str, str] = {}
    try:
        l16 = make_service(app, store, clock, L16)
        c18 = make_service(app, store, clock, C18)
        warrant = make_request(categories=["content", "traffic"])
        ids["warrant-l16"] = (await l16.file({**warrant, "id": "W-L16"}, "counsel")).id
        ids["warrant-c18"] = (await c18.file({**warrant, "id": "W-C18"}, "counsel",
                                             {BOB: {"residence": "IE"}})).id
        nsl = make_request(instrument="us-nsl", categories=["subscriber", "traffic"],
                           targets=[CAROL], issuer={"authority": "intelligence"})
        ids["nsl"] = (await c18.file({**nsl, "id": "NSL-1"}, "counsel")).id
        await c18.decide("NSL-1", "counsel")
        clock.now = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
        epoc = make_request(received_at="2026-09-01T09:00:00Z",
                            served_at="2026-09-01T09:00:00Z", instrument="eu-epoc",
                            categories=["content"],
                            issuer={"country": "IT", "name": "Tribunale di Milano"},
                            offence={"max_penalty_years": 5, "country": "IT"})
        ids["epoc"] = (await l16.file({**epoc, "id": "EPOC-1"}, "counsel")).id
    finally:
        await store.close()
    await app.audit.flush()  # type: ignore[attr-defined]
    return ids


def _state(app: App) -> str:
    """A digest of the audit log and the legal database's files."""
    h = hashlib.sha256()
    control = app.config.control_dir
    h.update(str(len(log_records(control))).encode())
    for path in sorted((control / "audit").rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


async def _rows(app: App) -> list[Any]:
    store = LegalStore(app.config.control_dir, fsync=False)
    try:
        return [await store.list_matters(), await store.holds(), await store.notices()]
    finally:
        await store.close()


async def _impact(app: App, *args: str) -> Result:
    return await asyncio.to_thread(
        CliRunner().invoke, cli, ["--home", str(app.config.home), "legal", "impact", *args])


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in report["matters"]}


def _outcome(matter: dict[str, Any], target: str, category: str) -> dict[str, Any]:
    for f in matter["findings"]:
        if (f["target"], f["category"]) == (target, category):
            return {k: v for k, v in f["outcome"].items() if k != "decided"}
    raise KeyError((target, category))


async def test_impact_of_the_other_profile(app: App, clock: Clock) -> None:
    await _file_history(app, clock)
    before, rows = _state(app), await _rows(app)
    result = await _impact(app, "--profile", C18, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["profile"] == C18
    matters = _by_id(report)
    assert set(matters) == {"W-L16", "W-C18", "NSL-1", "EPOC-1"}
    # Filed under location-2016: the Irish content went to an MLAT; now disclosed.
    l16 = matters["W-L16"]
    assert (l16["jurisdiction"], l16["instrument"]) == ("US", "us-warrant")
    assert _outcome(l16, BOB, "content") == {"then": "redirect-mlat", "now": "disclose"}
    content = next(f for f in l16["findings"] if f["category"] == "content")
    assert content["policies"]["then"][0] == "L16-13-data-abroad"
    assert content["policies"]["now"][0].startswith("C18-13")
    assert l16["verdict"] == "disclose-more"
    assert l16["production"]["added"] == {BOB: ["content", "traffic"]}
    assert l16["transparency"] == {"then": "rejected", "now": "content"}
    # Filed under cloud-act-2018 already: the same outcomes.
    assert matters["W-C18"]["verdict"] == "unchanged"
    assert matters["NSL-1"]["verdict"] == "unchanged"
    assert matters["NSL-1"]["state"] != "evaluated"
    totals = report["totals"]
    assert totals["matters"] == 4
    assert totals["disclose-more"] >= 1 and totals["error"] == 0
    assert sum(totals[k] for k in totals if k != "matters") == 4
    # Nothing stored changed: no matter, hold, notice, nor audit record.
    assert _state(app) == before
    assert await _rows(app) == rows
    # The human-readable report says the same.
    text = await _impact(app, "--profile", C18)
    assert text.exit_code == 0, text.output
    assert "W-L16  US us-warrant" in text.stdout
    assert f"{BOB} content: redirect-mlat -> disclose" in text.stdout
    assert "totals: unchanged" in text.stdout


async def test_impact_of_edited_policies_that_forbid_content(
        app: App, clock: Clock, tmp_path: Path) -> None:
    await _file_history(app, clock)
    edited = tmp_path / "no-content"
    shutil.copytree(PROFILES_DIR / C18, edited)
    (edited / "zz-no-content.cedar").write_text(NO_CONTENT)
    before, rows = _state(app), await _rows(app)
    result = await _impact(app, "--policy-dir", str(edited), "--json")
    assert result.exit_code == 0, result.output
    matters = _by_id(json.loads(result.stdout))
    c18 = matters["W-C18"]
    assert _outcome(c18, BOB, "content") == {"then": "disclose", "now": "reject"}
    assert next(f for f in c18["findings"] if f["category"] == "content"
                )["policies"]["now"][0] == "X-05-no-content"
    assert c18["verdict"] == "refuse-more"
    assert c18["production"]["withheld"] == {BOB: ["content"]}
    # The NSL reaches no content: untouched by the edit.
    assert matters["NSL-1"]["verdict"] == "unchanged"
    assert _outcome(matters["EPOC-1"], BOB, "content")["now"] == "reject"
    assert _state(app) == before
    assert await _rows(app) == rows


async def test_bad_policies_and_bad_records(app: App, clock: Clock, tmp_path: Path) -> None:
    await _file_history(app, clock)
    broken = tmp_path / "broken"
    shutil.copytree(PROFILES_DIR / L16, broken)
    (broken / "zz-broken.cedar").write_text('@id("X-1")\n@row("5")\npermit (principal,')
    result = await _impact(app, "--policy-dir", str(broken))
    assert result.exit_code == 2
    assert "zz-broken.cedar" in result.stderr and "nothing was decided" in result.stderr
    assert result.stdout == ""
    both = await _impact(app, "--profile", C18, "--policy-dir", str(broken))
    assert both.exit_code == 2 and "exactly one" in both.stderr
    unknown = await _impact(app, "--profile", "no-such-profile")
    assert unknown.exit_code == 2 and "no-such-profile" in unknown.stderr
    # A matter whose record lost a target's facts is an error, not a crash.
    await asyncio.to_thread(_rewrite_facts, app.config.control_dir, "W-L16", "{}")
    result = await _impact(app, "--profile", C18, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    broken_matter = _by_id(report)["W-L16"]
    assert broken_matter["verdict"] == "error"
    assert BOB in broken_matter["error"]
    assert report["totals"]["error"] == 1


def _rewrite_facts(control: Path, matter_id: str, facts: str) -> None:
    with contextlib.closing(sqlite3.connect(control / LEGAL_DB)) as c, c:
        c.execute("UPDATE matters SET facts=? WHERE id=?", (facts, matter_id))


async def test_a_matter_decided_in_stages_is_compared_with_what_it_handed_over(
        app: App, clock: Clock, tmp_path: Path) -> None:
    """An EU order to an operator in Ireland: subscriber data went out at once, content
    after the enforcing state's window (an override). Policies that refuse content
    would have withheld the second stage."""
    clock.now = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
    await add_bob(app, "eu-dublin")
    store = LegalStore(app.config.control_dir, fsync=False)
    try:
        eu = make_service(app, store, clock, country="IE")
        epoc = make_request(received_at="2026-09-01T09:00:00Z",
                            served_at="2026-09-01T09:00:00Z", instrument="eu-epoc",
                            categories=["subscriber", "content"],
                            issuer={"country": "IT", "name": "Tribunale di Milano"},
                            offence={"max_penalty_years": 5, "country": "IT"})
        matter = await eu.file(epoc, "counsel", {BOB: {"residence": "BE"}})
        assert (await eu.decide(matter.id, "counsel")).state == "waiting"
        clock.now = datetime(2026, 9, 11, 10, 0, tzinfo=UTC)
        done = await eu.decide(matter.id, "counsel", override="disclose",
                               categories=["content"], justification="no objection")
        assert done.state == "executed" and done.package and done.package.endswith("-stage2")
        edited = tmp_path / "no-content"
        shutil.copytree(PROFILES_DIR / L16, edited)
        (edited / "zz-no-content.cedar").write_text(NO_CONTENT)
        impact = LegalImpact(store, app.control, "IE")
        same = await impact.run(PolicyEngine(load_profile(L16), load_jurisdictions()), "t")
        report = await impact.run(PolicyEngine(load_profile(edited), load_jurisdictions()),
                                  "t")
    finally:
        await store.close()
    [same_matter] = same.matters
    # Policy compared with policy: the same profile recommends the same.
    assert same_matter.overridden and same_matter.verdict == "unchanged"
    content = next(f for f in same_matter.findings if f.category == "content")
    assert (content.outcome_then, content.decided) == ("hold-enforcing-state", "disclose")
    [staged] = report.matters
    assert staged.handed_over == {(BOB, "subscriber"), (BOB, "content")}
    assert staged.produced_then == staged.produced_now == {(BOB, "subscriber")}
    assert staged.verdict == "changed"
    content = next(f for f in staged.findings if f.category == "content")
    assert (content.outcome_then, content.outcome_now) == ("hold-enforcing-state", "reject")
    assert content.policies_now[0] == "X-05-no-content"
    lines = "\n".join(describe(report))
    assert f"{BOB} content: hold-enforcing-state -> reject (decided: disclose)" in lines
    assert f"handed over, now withheld: {BOB} content" in lines
    assert staged.to_json()["production"]["handed_over_now_withheld"] == {BOB: ["content"]}
