"""Four-eyes approval through the front-ends: ``letterlock legal approve`` and
``reject-approval`` on a real HOME with real operators (on by default), and the HTTP
routes with the bearer operator as the actor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from letterlock.app import App
from letterlock.cli.main import cli
from letterlock.http.legal_api import OperatorIdentity
from letterlock.services.legal.approval import DEFAULT

from .harness import make_request
from .legal_api_client import legal_api_client
from .matter_support import PASSWORD, add_bob
from .test_legal_formats import problems

TOKENS = {"t-lee": OperatorIdentity("lee", "legal"),
          "t-ada": OperatorIdentity("ada", "admin"),
          "t-kim": OperatorIdentity("kim", "legal"),
          "t-aud": OperatorIdentity("aud", "auditor")}


def test_cli_approve_and_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_ITERATIONS", "1")
    home = str(tmp_path / "home")
    runner = CliRunner()

    def call(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(cli, ["--home", home, *args], input=stdin)
        return result.exit_code, str(result.stdout), str(result.stderr)

    def ok(*args: str, stdin: str | None = None) -> str:
        code, out, err = call(*args, stdin=stdin)
        assert code == 0, (args, out, err)
        return out

    ok("init")
    ok("user", "add", "bob@example.test", "--region", "us-east", "--password-stdin",
       stdin=PASSWORD + "\n")
    for name, role in (("lee", "legal"), ("ada", "admin"), ("aud", "auditor")):
        ok("operator", "add", name, "--role", role, "--password-stdin",
           stdin=PASSWORD + "\n")
    req = tmp_path / "req.json"
    req.write_text(json.dumps(make_request(categories=["content"])))
    matter_id = ok("legal", "file", str(req), "--actor", "kim").strip()
    proposed = json.loads(ok("legal", "decide", matter_id, "--accept", "--actor", "lee",
                             "--json"))
    assert proposed["state"] == "awaiting-approval" and proposed["package"] is None
    assert proposed["proposal"]["proposed_by"] == "lee"
    assert proposed["proposal"]["needs"] == ["content"]
    shown = ok("legal", "show", matter_id)
    assert "proposed by lee" in shown and "awaiting approval" in shown
    assert "awaiting-approval (lee)" in ok("legal", "list")

    for actor, words in (("lee", "proposed the decision"), ("aud", "role auditor"),
                         ("nobody", "no operator nobody")):
        code, _, err = call("legal", "approve", matter_id, "--actor", actor)
        assert code == 2 and words in err, (actor, err)
        assert len(err.strip().splitlines()) == 1
    assert json.loads(ok("legal", "show", matter_id, "--json"))["package"] is None

    refused = ok("legal", "reject-approval", matter_id, "--actor", "ada",
                 "--reason", "check the date range")
    assert "refused by ada, evaluated" in refused
    assert "refused by ada" in ok("legal", "show", matter_id)
    ok("legal", "decide", matter_id, "--accept", "--actor", "lee")
    approved = ok("legal", "approve", matter_id, "--actor", "ada")
    assert "approved by ada, notified" in approved and "package: " in approved
    package = approved.split("package: ")[1].strip()
    assert ok("legal", "verify-package", package).startswith("ok: matter " + matter_id)


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with legal_api_client(app, TOKENS, four_eyes=DEFAULT) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_approve_and_refuse(app: App, client: httpx.AsyncClient) -> None:
    await add_bob(app)
    body = {"request": make_request(categories=["content"])}
    filed = (await client.post("/api/legal/matters", json=body, headers=_auth("t-kim"))).json()
    url = f"/api/legal/matters/{filed['id']}"
    proposed = await client.post(f"{url}/decision", json={"accept": True},
                                 headers=_auth("t-lee"))
    assert proposed.status_code == 200, proposed.text
    assert proposed.json()["state"] == "awaiting-approval"
    own = await client.post(f"{url}/approve", headers=_auth("t-lee"))
    assert own.status_code == 403 and "lee proposed" in own.json()["detail"]
    filer = await client.post(f"{url}/approve", headers=_auth("t-kim"))
    assert filer.status_code == 403 and "kim filed" in filer.json()["detail"]
    auditor = await client.post(f"{url}/approve", headers=_auth("t-aud"))
    assert auditor.status_code == 403
    nobody = await client.post(f"{url}/approve")
    assert nobody.status_code == 401
    no_reason = await client.post(f"{url}/reject-approval", json={"reason": " "},
                                  headers=_auth("t-ada"))
    assert no_reason.status_code == 422
    refused = await client.post(f"{url}/reject-approval", json={"reason": "not yet"},
                                headers=_auth("t-ada"))
    assert refused.status_code == 200, refused.text
    assert refused.json()["state"] == "evaluated"
    assert refused.json()["proposal"]["outcome"] == "refused"
    again = await client.post(f"{url}/approve", headers=_auth("t-ada"))
    assert again.status_code == 409  # nothing awaits approval
    await client.post(f"{url}/decision", json={"accept": True}, headers=_auth("t-ada"))
    approved = await client.post(f"{url}/approve", headers=_auth("t-lee"))
    assert approved.status_code == 200, approved.text
    matter = approved.json()
    assert matter["state"] == "notified" and matter["package"]
    assert matter["decided_by"] == "ada"
    assert matter["proposal"]["resolved_by"] == "lee"
    assert matter["proposal"]["outcome"] == "approved"

    # The OpenAPI schema types every answer, the proposal included.
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    ref = {"$ref": "#/components/schemas/Matter"}
    approve = schema["paths"]["/api/legal/matters/{matter_id}/approve"]["post"]
    assert approve["responses"]["200"]["content"]["application/json"]["schema"] == ref
    assert "/api/legal/matters/{matter_id}/reject-approval" in schema["paths"]
    for answer in (proposed.json(), refused.json(), matter):
        assert problems(answer, ref, components) == [], answer["state"]
    assert problems({**matter, "proposal": {**matter["proposal"], "needs": ["whim"]}},
                    ref, components)
