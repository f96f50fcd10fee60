"""The legal console for an operator seated in the EU: the enforcing state's step of
a European Production Order (Regulation 2023/1543 art. 8, 10, 12) recorded from the
matter page, by name, with clear refusals of bad input."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_console_legal import (  # noqa: F401 - site is a fixture
    FOUR_EYES,
    request,
    site,
    switch,
    trail_of,
)

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.audit.events import EventType
from support.env import make_config


@pytest.fixture
def config(home: Path) -> config_mod.Config:
    return make_config(home, LETTERLOCK_LEGAL_OPERATOR_COUNTRY="IE", **FOUR_EYES)



async def test_the_enforcing_state_answer_is_recorded_from_the_console(
        site: httpx.AsyncClient, app: App) -> None:  # noqa: F811
    """A European Production Order for a non-resident's content waits for the
    enforcing state; its refusal is recorded from the matter page (by name), and the
    policy rejects the held content (R14)."""
    carol = "carol@example.test"
    await app.accounts.create(carol, "eu-dublin", "carol's password, long enough")
    epoc = request("eu-epoc", ("subscriber", "content"), targets=[carol],
                   issuer={"country": "IT", "authority": "court",
                           "name": "Tribunale di Milano", "judge_validated": True,
                           "verified": True},
                   offence={"max_penalty_years": 5, "listed": False, "country": "IT"})
    matter = await app.legal.file(epoc, "lou", {carol: {"residence": "BE"}})
    first = await app.legal.decide(matter.id, "lou")
    assert first.state == "waiting"
    csrf = await switch(site, "lee")
    page = await site.get(f"/console/legal/{matter.id}")
    assert 'id="enforcing-state-form"' in page.text
    assert "ne bis in idem" in page.text  # the grounds in the jurisdiction data's words
    empty = await site.post(f"/console/legal/{matter.id}/enforcing-state",
                            data={"csrf": csrf, "answer": "refused"})
    assert empty.status_code == 422 and "Tick the grounds" in empty.text
    done = await site.post(f"/console/legal/{matter.id}/enforcing-state",
                           data={"csrf": csrf, "answer": "refused",
                                 "ground:ne-bis-in-idem": "on"})
    assert done.status_code == 303
    decided = await app.legal.show(matter.id)
    assert decided.state == "executed" and decided.decision is not None
    content = decided.decision.finding(carol, "content")
    assert (content.outcome, content.reasons) == ("reject", ("R14",))
    page = await site.get(f"/console/legal/{matter.id}")
    assert 'id="enforcing-state-form"' not in page.text
    assert "the enforcing state raised ne-bis-in-idem" in page.text
    logged = [e for e in await trail_of(app, matter.id) if e.matter == matter.id
              and e.type == EventType.LEGAL_MATTER_EVALUATED and e.actor == "lee"]
    assert len(logged) == 1
