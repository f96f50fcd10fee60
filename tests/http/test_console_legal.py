"""The legal console over HTTP (httpx against the real application, four-eyes on):
the queue by deadline, the matter page with its policies and R-codes in plain words,
the role gate (an auditor reads and never acts), CSRF, four-eyes (the filer cannot
approve), errors as pages, and a matter from filing to its package and audit trail
with the operators' names."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_console import PASSWORD, csrf_of, events, session_csrf, sign_in

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.audit.events import EventFinder, EventType
from letterlock.http.server import make_api
from letterlock.services.legal import explain
from letterlock.services.legal.production import verify_package
from letterlock.services.operations.log_events import LogEvent
from support.env import make_config

BOB = "bob@example.test"
FOUR_EYES = {"LETTERLOCK_LEGAL_FOUR_EYES": "content,override,flagged"}


@pytest.fixture
def config(home: Path) -> config_mod.Config:
    return make_config(home, **FOUR_EYES)


async def populate(app: App) -> None:
    """Operators root (admin), lee and lou (legal), ada (auditor); bob in us-east
    with a message."""
    for name, role in (("root", "admin"), ("lee", "legal"), ("ada", "auditor"),
                       ("lou", "legal")):
        await app.operators.add(name, role, PASSWORD, actor="test")
    ref, _ = await app.accounts.create(BOB, "us-east", "bob's password, long enough")
    await app.delivery.deliver(
        f"From: alice@example.org\r\nTo: {BOB}\r\nSubject: hi\r\n\r\nHello.\r\n".encode(),
        [ref])


@pytest.fixture
async def site(app: App) -> AsyncIterator[httpx.AsyncClient]:
    await populate(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_api(app)),
                                 base_url="http://letterlock.test") as c:
        yield c


def request(instrument: str = "us-warrant", categories: tuple[str, ...] = ("content",),
            served: datetime | None = None, action: str = "produce",
            **more: Any) -> dict[str, Any]:
    at = (served or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"received_at": at, "served_at": at,
            "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                       "judge_validated": True, "verified": True},
            "instrument": instrument, "action": action, "categories": list(categories),
            "targets": [BOB],
            "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
            "emergency": False, "gag": None, "renewal_of_served_at": None, **more}


def preservation(days_ago: int, matter_id: str) -> dict[str, Any]:
    return request("us-preservation", ("subscriber", "content"),
                   served=datetime.now(UTC) - timedelta(days=days_ago), action="preserve",
                   id=matter_id)


async def switch(client: httpx.AsyncClient, name: str) -> str:
    """Sign in as ``name`` (a fresh session); returns its CSRF token."""
    client.cookies.clear()
    signed = await sign_in(client, name)
    assert signed.status_code == 303, signed.text
    return await session_csrf(client)


def queue_ids(html: str) -> list[str]:
    body = html.split('<table id="matters">', 1)[1]
    return re.findall(r'<th scope="row"><a href="/console/legal/[^"]+">([^<]+)</a>', body)


def trail_of(app: App, matter: str) -> Any:
    finder = app.audit
    assert isinstance(finder, EventFinder)
    return finder.events_since(0)


async def test_the_queue_is_sorted_by_deadline_with_overdue_and_due_marked(
        site: httpx.AsyncClient, app: App) -> None:
    await app.legal.file(preservation(10, "P-LATER"), "lee")       # due in 80 days
    await app.legal.file(preservation(95, "P-OVERDUE"), "lee")     # due 5 days ago
    await app.legal.file(preservation(89, "P-SOON"), "lee")        # due in a day
    await app.legal.file(request("us-subpoena", ("subscriber",), id="S-NODUE"), "lee")
    await switch(site, "ada")
    page = await site.get("/console/legal")
    assert page.status_code == 200
    assert queue_ids(page.text) == ["P-OVERDUE", "P-SOON", "P-LATER", "S-NODUE"]
    rows = {i: r for i, r in zip(queue_ids(page.text), page.text.split(
        '<table id="matters">', 1)[1].split("<tr class=")[1:], strict=True)}
    assert "Overdue:" in rows["P-OVERDUE"] and "Due soon:" in rows["P-SOON"]
    assert "Overdue" not in rows["P-LATER"] and "Due soon" not in rows["P-LATER"]
    assert "none open" in rows["S-NODUE"]
    assert "1 matter with a deadline passed" in page.text

    await app.legal.close("P-LATER", "lee")
    open_only = await site.get("/console/legal")
    assert "P-LATER" not in queue_ids(open_only.text)
    closed = await site.get("/console/legal?state=closed")
    assert queue_ids(closed.text) == ["P-LATER"]
    everything = await site.get("/console/legal?state=all")
    assert sorted(queue_ids(everything.text)) == ["P-LATER", "P-OVERDUE", "P-SOON",
                                                  "S-NODUE"]
    nonsense = await site.get("/console/legal?state=<script>")
    assert nonsense.status_code == 200 and "<script>" not in nonsense.text


async def test_the_matter_page_explains_policies_and_reason_codes(
        site: httpx.AsyncClient, app: App) -> None:
    matter = await app.legal.file(
        request("us-subpoena", ("subscriber", "content"),
                date_range={"from": "2025-01-01", "to": "2025-06-30"},
                gag={"until": "2031-01-01T00:00:00Z"}), "lee")
    await switch(site, "lee")
    page = await site.get(f"/console/legal/{matter.id}")
    assert page.status_code == 200
    text = page.text
    assert "us-subpoena" in text and "S.D.N.Y." in text and BOB in text
    assert "2025-01-01" in text and "2025-06-30" in text and "gag until" in text
    content = matter.recommendation.finding(BOB, "content")
    assert content.outcome == "reject" and "R03" in content.reasons
    assert explain.REASONS["R03"] in text
    # each cited policy with the words its author wrote above it
    words = explain.PolicyExplainer(app.config.legal.policy_dir or app.config.legal.profile)
    for pid in {p for _, _, f in matter.recommendation.findings() for p in f.policies}:
        said = words.policy(pid)
        assert said.kind == "row" and len(said.text) > 15, said
        assert f"<code>{pid}</code>" in text
        assert said.text.replace("'", "&#39;").replace('"', "&#34;") in text
    assert "instrument can reach" in words.policy(content.policies[0]).text
    # facts from the store
    assert "United States" in text
    # legal sees the forms, an auditor does not
    assert 'id="decide-form"' in text and 'id="close-form"' in text
    await switch(site, "ada")
    read = await site.get(f"/console/legal/{matter.id}")
    assert read.status_code == 200 and explain.REASONS["R03"] in read.text
    assert "<form method=\"post\" action=\"/console/legal" not in read.text
    assert "You read this matter as an auditor" in read.text


def test_the_words_match_the_formats_reference() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "legal-formats.md").read_text()

    def table(title: str) -> dict[str, str]:
        section = doc.split(f"### {title}\n", 1)[1].split("\n#", 1)[0]
        rows = [line.split("|")[1:3] for line in section.splitlines()
                if line.startswith("| `")]
        return {k.strip().strip("`"): v.strip() for k, v in rows}

    assert table("Reasons") == explain.REASONS
    assert table("Outcomes") == {k: v.replace("deadline challenge", "deadline `challenge`")
                                 for k, v in explain.OUTCOMES.items()}


async def test_an_auditor_cannot_act_and_a_forged_form_is_refused(
        site: httpx.AsyncClient, app: App) -> None:
    matter = await app.legal.file(request("us-subpoena", ("subscriber",)), "lee")
    csrf = await switch(site, "ada")
    for action, data in (("decide", {"choice": "accept"}), ("approve", {}),
                         ("reject-approval", {"reason": "no"}), ("close", {}),
                         ("lift-gag", {}), ("extend-gag", {"indefinite": "on"}),
                         ("inform-requested", {})):
        answer = await site.post(f"/console/legal/{matter.id}/{action}",
                                 data={"csrf": csrf, **data})
        assert answer.status_code == 403, action
        assert "Not for your role" in answer.text and "legal or admin" in answer.text
    assert (await app.legal.show(matter.id)).state == "evaluated"
    csrf = await switch(site, "lee")
    forged = await site.post(f"/console/legal/{matter.id}/decide",
                             data={"csrf": "forged", "choice": "accept"})
    assert forged.status_code == 403
    assert (await app.legal.show(matter.id)).state == "evaluated"
    done = await site.post(f"/console/legal/{matter.id}/decide",
                           data={"csrf": csrf, "choice": "accept"})
    assert done.status_code == 303
    shown = await site.get(done.headers["location"])
    assert "lee decided" in shown.text
    assert (await app.legal.show(matter.id)).decided_by == "lee"


async def test_bad_input_and_refusals_are_pages_not_tracebacks(
        site: httpx.AsyncClient, app: App) -> None:
    matter = await app.legal.file(request("us-subpoena", ("subscriber",)), "lee")
    csrf = await switch(site, "lee")
    unjustified = await site.post(f"/console/legal/{matter.id}/decide", data={
        "csrf": csrf, "choice": "override", "outcome": "reject", "justification": " "})
    assert unjustified.status_code == 422
    assert "An override needs a written justification" in unjustified.text
    assert 'value="override" checked' in unjustified.text  # the form kept its choice
    bad_target = await site.post(f"/console/legal/{matter.id}/decide", data={
        "csrf": csrf, "choice": "override", "outcome": "reject", "justification": "x",
        "target:eve@example.test": "on"})
    assert bad_target.status_code == 422 and "no finding for eve@example.test" in \
        bad_target.text
    not_awaiting = await site.post(f"/console/legal/{matter.id}/approve",
                                   data={"csrf": csrf})
    assert not_awaiting.status_code == 409 and "not awaiting approval" in not_awaiting.text
    unknown = await site.post(f"/console/legal/{matter.id}/explode", data={"csrf": csrf},
                              headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and "There is no page at this address" in unknown.text
    missing = await site.get("/console/legal/M-nope")
    assert missing.status_code == 404 and "M-nope" in missing.text
    no_zip = await site.get(f"/console/legal/{matter.id}/package/other.zip")
    assert no_zip.status_code == 404
    assert "Traceback" not in unjustified.text + missing.text + no_zip.text
    assert (await app.legal.show(matter.id)).state == "evaluated"


async def test_four_eyes_the_filer_and_proposer_cannot_approve(
        site: httpx.AsyncClient, app: App) -> None:
    matter = await app.legal.file(request(), "lou")  # content: needs a second operator
    csrf = await switch(site, "lee")
    proposed = await site.post(f"/console/legal/{matter.id}/decide",
                               data={"csrf": csrf, "choice": "accept"})
    assert proposed.status_code == 303
    page = await site.get(f"/console/legal/{matter.id}")
    assert "Pending approval" in page.text and "it hands over content" in page.text
    assert 'id="approve-form"' not in page.text  # the proposer is not offered it
    queue = await site.get("/console/legal")
    pending = queue.text.split('id="pending-list"', 1)[1].split("</ul>", 1)[0]
    assert matter.id in pending and "proposed by lee" in pending
    assert "you may approve it" not in pending  # lee proposed it
    own = await site.post(f"/console/legal/{matter.id}/approve", data={"csrf": csrf})
    assert own.status_code == 403 and "another operator must approve" in own.text
    csrf = await switch(site, "lou")
    filer = await site.post(f"/console/legal/{matter.id}/approve", data={"csrf": csrf})
    assert filer.status_code == 403 and "lou filed matter" in filer.text
    assert (await app.legal.show(matter.id)).state == "awaiting-approval"
    # a refusal with a reason sends it back; then an accepted proposal is approved
    refused = await site.post(f"/console/legal/{matter.id}/reject-approval",
                              data={"csrf": csrf, "reason": "check the date range"})
    assert refused.status_code == 303
    assert (await app.legal.show(matter.id)).state == "evaluated"
    csrf = await switch(site, "lee")
    await site.post(f"/console/legal/{matter.id}/decide",
                    data={"csrf": csrf, "choice": "accept"})
    csrf = await switch(site, "root")
    queue = await site.get("/console/legal")
    assert "you may approve it" in queue.text.split('id="pending-list"', 1)[1]
    approved = await site.post(f"/console/legal/{matter.id}/approve", data={"csrf": csrf})
    assert approved.status_code == 303
    done = await app.legal.show(matter.id)
    assert done.state in ("executed", "notified") and done.proposal is not None
    assert done.proposal.resolved_by == "root" and done.decided_by == "lee"


async def test_a_matter_from_filing_to_package_and_trail(
        site: httpx.AsyncClient, app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    matter = await app.legal.file(request(categories=("subscriber", "content")), "lou")
    csrf = await switch(site, "lee")
    queue = await site.get("/console/legal")
    assert matter.id in queue_ids(queue.text)
    page = await site.get(f"/console/legal/{matter.id}")
    assert page.status_code == 200 and "Nothing was handed over" in page.text
    await site.post(f"/console/legal/{matter.id}/decide",
                    data={"csrf": csrf, "choice": "accept"})
    csrf = await switch(site, "root")
    page = await site.get(f"/console/legal/{matter.id}")
    assert 'id="approve-form"' in page.text
    await site.post(f"/console/legal/{matter.id}/approve", data={"csrf": csrf})
    page = await site.get(f"/console/legal/{matter.id}")
    assert "root approved the decision" in page.text
    link = re.search(r'href="(/console/legal/[^"]+/package/[^"]+)"', page.text)
    assert link, page.text
    got = await site.get(link.group(1))
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
        assert "manifest.json" in zf.namelist()
    saved = Path(str(app.config.control_dir)) / "downloaded.zip"
    saved.write_bytes(got.content)
    check = verify_package(saved)
    assert check.ok and check.matter == matter.id and check.items > 0
    [logged_download] = events(caplog, LogEvent.LEGAL_PACKAGE_DOWNLOADED)
    assert logged_download["actor"] == "root" and logged_download["matter"] == matter.id
    assert logged_download["package"] == f"{matter.id}.zip"

    trail = await site.get(f"/console/legal/{matter.id}/trail")
    assert trail.status_code == 200
    rows = [(kind, actor) for actor, kind in re.findall(
        r'<strong class="actor">([^<]+)</strong>.*?<code>(legal:[a-z:-]+)</code>',
        trail.text, re.S)]
    assert ("legal:matter:filed", "lou") in rows
    assert ("legal:decision:proposed", "lee") in rows
    assert ("legal:decision:approved", "root") in rows
    assert ("legal:production:executed", "root") in rows
    logged = [(e.type, e.actor) for e in await trail_of(app, matter.id)
              if e.matter == matter.id]
    assert (EventType.LEGAL_DECISION_APPROVED, "root") in logged
    # closing, by name
    csrf = await switch(site, "lee")
    closed = await site.post(f"/console/legal/{matter.id}/close", data={"csrf": csrf})
    assert closed.status_code == 303
    again = await site.post(f"/console/legal/{matter.id}/close", data={"csrf": csrf})
    assert again.status_code == 409 and "closed already" in again.text
    logged = [(e.type, e.actor) for e in await trail_of(app, matter.id)
              if e.matter == matter.id]
    assert (EventType.LEGAL_MATTER_CLOSED, "lee") in logged
    assert csrf_of((await site.get("/console/legal")).text)


async def test_an_override_narrowed_to_a_category_is_proposed_and_approved(
        site: httpx.AsyncClient, app: App) -> None:
    matter = await app.legal.file(request(categories=("subscriber", "content")), "lou")
    csrf = await switch(site, "lee")
    proposed = await site.post(f"/console/legal/{matter.id}/decide", data={
        "csrf": csrf, "choice": "override", "outcome": "reject",
        "justification": "content: counsel finds the warrant overbroad",
        "category:content": "on"})
    assert proposed.status_code == 303
    page = await site.get(f"/console/legal/{matter.id}")
    assert "to override to <strong>reject</strong>" in page.text
    assert "it overrides the policy&#39;s recommendation" in page.text
    assert 'id="proposal-table"' in page.text
    csrf = await switch(site, "root")
    assert (await site.post(f"/console/legal/{matter.id}/approve",
                            data={"csrf": csrf})).status_code == 303
    done = await app.legal.show(matter.id)
    assert done.decision is not None and done.overridden
    assert done.decision.finding(BOB, "content").outcome == "reject"
    assert done.decision.finding(BOB, "subscriber").outcome == "disclose"
    page = await site.get(f"/console/legal/{matter.id}")
    assert "counsel finds the warrant overbroad" in page.text
    assert "a human decision: lee overrode the policy&#39;s outcome" in page.text
    assert 'id="decision-table"' in page.text


async def test_a_gag_the_instrument_implies_is_shown(site: httpx.AsyncClient,
                                                     app: App) -> None:
    matter = await app.legal.file(request("us-nsl", ("subscriber",)), "lou")
    await switch(site, "ada")
    page = await site.get(f"/console/legal/{matter.id}")
    assert "gag without end date</strong> (implied by the instrument)" in page.text


async def test_the_order_extended_then_lifted_by_name(site: httpx.AsyncClient,
                                                     app: App) -> None:
    matter = await app.legal.file(
        request("us-subpoena", ("subscriber",), gag={"until": "2030-01-01T00:00:00Z"}),
        "lou")
    csrf = await switch(site, "lee")
    await site.post(f"/console/legal/{matter.id}/decide",
                    data={"csrf": csrf, "choice": "accept"})
    decided = await app.legal.show(matter.id)
    assert [n.sent_at for n in decided.notices] == [None]
    page = await site.get(f"/console/legal/{matter.id}")
    assert 'id="extend-form"' in page.text and 'id="lift-form"' in page.text
    both = await site.post(f"/console/legal/{matter.id}/extend-gag",
                           data={"csrf": csrf, "until": "2031-06-01", "indefinite": "on"})
    assert both.status_code == 422 and "not both" in both.text
    extended = await site.post(f"/console/legal/{matter.id}/extend-gag",
                               data={"csrf": csrf, "until": "2031-06-01"})
    assert extended.status_code == 303
    page = await site.get(f"/console/legal/{matter.id}")
    assert "was extended to 2031-06-01" in page.text
    assert "extended by <strong>lee</strong> to 1 June 2031" in page.text
    csrf = await switch(site, "root")
    lifted = await site.post(f"/console/legal/{matter.id}/lift-gag", data={"csrf": csrf})
    assert lifted.status_code == 303
    page = await site.get(f"/console/legal/{matter.id}")
    assert "recorded by <strong>root</strong>" in page.text
    assert 'id="lift-form"' not in page.text
    done = await app.legal.show(matter.id)
    assert all(n.sent_at is not None for n in done.notices)
    logged = {(str(e.type), e.actor) for e in await trail_of(app, matter.id)
              if e.matter == matter.id}
    assert ("legal:gag:extended", "lee") in logged and ("legal:gag:lifted", "root") in logged
