"""The enforcing state's step from the command line (``letterlock legal
enforcing-state``) and the HTTP API (``POST /api/legal/matters/{id}/enforcing-state``),
on an operator seated in Ireland with an order served yesterday (the window runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from letterlock.app import App
from letterlock.http.legal_api import OperatorIdentity, make_legal_router
from letterlock.policy import format_time
from letterlock.services.legal.matters import LegalService

from .cli_home import CliHome
from .harness import make_request
from .matter_support import Clock, add_bob, clock, eu_legal

__all__ = ["clock", "eu_legal"]

BOB = "bob@example.test"


def _epoc(served: datetime) -> dict[str, object]:
    when = format_time(served)
    return make_request(received_at=when, served_at=when, instrument="eu-epoc",
                        categories=["content"],
                        issuer={"country": "IT", "authority": "court", "name": "Tribunale"},
                        offence={"max_penalty_years": 5, "country": "IT"})


def test_cli_enforcing_state_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = CliHome(tmp_path, monkeypatch)
    run, ok = home.run, home.ok
    ok("init", "--operator-country", "IE")
    ok("user", "add", BOB, "--region", "eu-dublin", "--password-stdin",
       stdin="correct horse battery\n")
    req, facts = tmp_path / "req.json", tmp_path / "facts.json"
    req.write_text(json.dumps(_epoc(datetime.now(UTC) - timedelta(days=1))))
    facts.write_text(json.dumps({BOB: {"residence": "BE"}}))
    mid = ok("legal", "file", str(req), "--facts", str(facts)).strip()
    ok("legal", "decide", mid, "--accept")

    code, _, err = run("legal", "enforcing-state", mid)
    assert code == 2 and "give one of" in err
    code, _, err = run("legal", "enforcing-state", mid, "--window-passed")
    assert code != 0 and "runs until" in err
    code, _, err = run("legal", "enforcing-state", mid, "--refused", "politics")
    assert code != 0 and "refusal ground 'politics'" in err

    out = ok("legal", "enforcing-state", mid, "--refused", "double-criminality",
             "--actor", "lee")
    assert out.strip() == f"{mid}: decided again, executed"
    shown = json.loads(ok("legal", "show", mid, "--json"))
    content = shown["decision"]["targets"][BOB]["content"]
    assert (content["outcome"], content["reasons"]) == ("reject", ["R14"])
    assert shown["facts"][BOB]["enforcing_state"]["refusal_grounds"] == ["double-criminality"]


async def test_http_enforcing_state_no_grounds(app: App, eu_legal: LegalService,
                                               clock: Clock) -> None:
    await add_bob(app, "eu-dublin")
    matter = await eu_legal.file(_epoc(datetime(2026, 9, 1, 9, 0, tzinfo=UTC)), "counsel",
                                 {BOB: {"residence": "BE"}})
    assert (await eu_legal.decide(matter.id, "counsel")).state == "waiting"
    api = FastAPI()
    api.include_router(make_legal_router(lambda: eu_legal,
                                         lambda: OperatorIdentity("lee", "legal")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://test") as c:
        url = f"/api/legal/matters/{matter.id}/enforcing-state"
        early = await c.post(url, json={"answered": False})
        assert early.status_code == 409, early.text
        bad = await c.post(url, json={"refusal_grounds": ["politics"]})
        assert bad.status_code == 422, bad.text
        clock.now += timedelta(days=2)
        ok = await c.post(url, json={"refusal_grounds": []})
        assert ok.status_code == 200, ok.text
        content = ok.json()["decision"]["targets"][BOB]["content"]
        assert content["outcome"] == "disclose"
        assert content["policies"][0] == "L16-15-epoc-enforcing-state-silent"
        assert ok.json()["state"] == "executed"
