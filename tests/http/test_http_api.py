"""The HTTP API against the real FastAPI application: operator authentication (tokens
and Basic), role checks, the legal workflow end to end, the owner's notices and
access feed with the mail password, and the guarantee that no route returns mail."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from letterlock.app import App
from letterlock.audit.records import decode
from letterlock.crypto.keys import KdfParams
from letterlock.errors import AuthenticationFailed
from letterlock.services.accounts.operators import OperatorService
from letterlock.storage.operators_sqlite import OperatorStore
from support.env import PASSWORD

OPERATOR_PASSWORD = "operator password"  # as in conftest.py

BOB = "bob@example.test"
CAROL = "carol@example.test"
MARKER = "plaintext-marker-7f3a"

# Every route of the API. A new route must be added here, after checking that it
# cannot return mail (see test_no_route_returns_mail).
ROUTES = {
    ("GET", "/healthz"),
    ("POST", "/api/operator/tokens"),
    ("DELETE", "/api/operator/tokens/current"),
    ("GET", "/api/operator/me"),
    ("GET", "/api/operators"),
    ("POST", "/api/operators"),
    ("GET", "/api/accounts"),
    ("POST", "/api/accounts/{address}/move"),
    ("DELETE", "/api/accounts/{address}"),
    ("POST", "/api/legal/matters"),
    ("GET", "/api/legal/matters"),
    ("GET", "/api/legal/matters/{matter_id}"),
    ("POST", "/api/legal/matters/{matter_id}/decision"),
    ("POST", "/api/legal/matters/{matter_id}/approve"),
    ("POST", "/api/legal/matters/{matter_id}/reject-approval"),
    ("POST", "/api/legal/matters/{matter_id}/close"),
    ("POST", "/api/legal/matters/{matter_id}/lift-gag"),
    ("POST", "/api/legal/matters/{matter_id}/inform-requested"),
    ("POST", "/api/legal/matters/{matter_id}/extend-gag"),
    ("POST", "/api/legal/tick"),
    ("POST", "/api/legal/matters/{matter_id}/enforcing-state"),
    # The matter file and letters: the order's original (the authority's document,
    # not mail), notes, letters and an export whose packages are manifests only.
    ("GET", "/api/legal/matters/{matter_id}/file"),
    ("PUT", "/api/legal/matters/{matter_id}/case-number"),
    ("POST", "/api/legal/matters/{matter_id}/notes"),
    ("POST", "/api/legal/matters/{matter_id}/attachments"),
    ("POST", "/api/legal/matters/{matter_id}/attachments/{attachment_id}/open"),
    ("POST", "/api/legal/matters/{matter_id}/export"),
    ("POST", "/api/legal/matters/{matter_id}/letters"),
    ("GET", "/api/legal/matters/{matter_id}/letters/{letter_id}/{name}"),
    ("GET", "/api/legal/search"),
    ("GET", "/api/me"),
    ("GET", "/api/me/notices"),
    ("GET", "/api/access/events"),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _request(categories: list[str], target: str = BOB, **extra: Any) -> dict[str, Any]:
    return {
        "received_at": _now(), "served_at": _now(),
        "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                   "judge_validated": True, "verified": True},
        "instrument": "us-warrant", "action": "produce", "categories": categories,
        "targets": [target],
        "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
        "emergency": False, "gag": None, "renewal_of_served_at": None, **extra,
    }


async def _bob(app: App) -> None:
    ref, _ = await app.accounts.create(BOB, "us-east", PASSWORD)
    await app.delivery.deliver(
        (f"From: alice@example.org\r\nTo: {BOB}\r\nSubject: {MARKER}\r\n\r\n"
         f"The body says {MARKER}.\r\n").encode(), [ref])


async def test_openapi_lists_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items()
              for method in ops}
    assert routes == ROUTES
    schemes = schema["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"basic", "bearer"}


async def test_index_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "operator add" in page.text
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert 'href="/docs"' in page.text
    docs = await client.get("/docs")  # our own page: no third-party scripts
    assert docs.status_code == 200 and "<script" not in docs.text
    assert "/api/legal/matters" in docs.text and "/openapi.json" in docs.text
    # An unknown address: a page for a browser, JSON for an API client.
    browser = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert browser.status_code == 404 and browser.headers["content-type"].startswith(
        "text/html") and "There is no page at this address" in browser.text
    api = await client.get("/api/no-such-route", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
    assert (await client.get("/no-such-page")).json() == {"detail": "Not Found"}


async def test_operator_tokens(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/operator/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic")
    wrong = await client.post("/api/operator/tokens", auth=("lee", "not the password"))
    assert wrong.status_code == 401
    nobody = await client.post("/api/operator/tokens", auth=("nobody", OPERATOR_PASSWORD))
    assert nobody.status_code == 401
    issued = await client.post("/api/operator/tokens", auth=("LEE", OPERATOR_PASSWORD))
    assert issued.status_code == 201
    body = issued.json()
    assert body["operator"] == "lee" and body["role"] == "legal"
    bearer = {"Authorization": f"Bearer {body['token']}"}
    me = await client.get("/api/operator/me", headers=bearer)
    assert me.json()["name"] == "lee" and me.json()["role"] == "legal"
    # HTTP Basic works on operator routes directly, too.
    basic = await client.get("/api/operator/me", auth=("ada", OPERATOR_PASSWORD))
    assert basic.json()["role"] == "auditor"
    forged = {"Authorization": "Bearer llop_" + "A" * 43}
    assert (await client.get("/api/operator/me", headers=forged)).status_code == 401
    assert (await client.delete("/api/operator/tokens/current",
                                headers=bearer)).status_code == 204
    assert (await client.get("/api/operator/me", headers=bearer)).status_code == 401
    assert (await client.delete("/api/operator/tokens/current",
                                headers=bearer)).status_code == 401


async def test_token_expires(app: App) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = OperatorStore(app.config.control_dir / "t", fsync=False)
    service = OperatorService(store, app.kdf, _params(app), app.audit,
                              token_lifetime=timedelta(hours=1), clock=lambda: now[0])
    try:
        await service.add("eve", "auditor", OPERATOR_PASSWORD)
        issued = await service.issue_token("eve", OPERATOR_PASSWORD)
        assert (await service.check_token(issued.token)).name == "eve"
        now[0] += timedelta(hours=1)
        with pytest.raises(AuthenticationFailed):
            await service.check_token(issued.token)
    finally:
        await store.close()


def _params(app: App) -> KdfParams:
    c = app.config.crypto
    return KdfParams(c.argon2_memory_kib, c.argon2_iterations, c.argon2_lanes)


async def test_operator_management_is_admin_only(
        client: httpx.AsyncClient, tokens: dict[str, dict[str, str]]) -> None:
    listed = await client.get("/api/operators", headers=tokens["admin"])
    assert [(o["name"], o["role"]) for o in listed.json()] == \
        [("ada", "auditor"), ("lee", "legal"), ("root", "admin")]
    for role in ("legal", "auditor"):
        assert (await client.get("/api/operators", headers=tokens[role])).status_code == 403
        denied = await client.post("/api/operators", headers=tokens[role],
                                   json={"name": "x", "role": "admin",
                                         "password": OPERATOR_PASSWORD})
        assert denied.status_code == 403
    added = await client.post("/api/operators", headers=tokens["admin"],
                              json={"name": "Dana", "role": "legal",
                                    "password": OPERATOR_PASSWORD})
    assert added.status_code == 201 and added.json()["name"] == "dana"
    again = await client.post("/api/operators", headers=tokens["admin"],
                              json={"name": "dana", "role": "legal",
                                    "password": OPERATOR_PASSWORD})
    assert again.status_code == 409
    bad_role = await client.post("/api/operators", headers=tokens["admin"],
                                 json={"name": "erin", "role": "superuser",
                                       "password": OPERATOR_PASSWORD})
    assert bad_role.status_code == 422 and "role" in bad_role.text
    short = await client.post("/api/operators", headers=tokens["admin"],
                              json={"name": "erin", "role": "legal", "password": "x"})
    assert short.status_code == 422
    assert (await client.post("/api/operator/tokens",
                              auth=("dana", OPERATOR_PASSWORD))).status_code == 201


async def test_roles_on_legal_matters(client: httpx.AsyncClient, app: App,
                                      tokens: dict[str, dict[str, str]]) -> None:
    await _bob(app)
    body = {"request": _request(["subscriber"])}
    assert (await client.post("/api/legal/matters", json=body)).status_code == 401
    assert (await client.post("/api/legal/matters", json=body,
                              headers=tokens["auditor"])).status_code == 403
    filed = await client.post("/api/legal/matters", json=body, headers=tokens["legal"])
    assert filed.status_code == 201, filed.text
    matter = filed.json()
    assert matter["filed_by"] == "lee"
    mid = matter["id"]
    seen = await client.get(f"/api/legal/matters/{mid}", headers=tokens["auditor"])
    assert seen.json()["state"] == "evaluated"
    assert (await client.post(f"/api/legal/matters/{mid}/decision", json={"accept": True},
                              headers=tokens["auditor"])).status_code == 403
    decided = await client.post(f"/api/legal/matters/{mid}/decision",
                                json={"accept": True}, headers=tokens["admin"])
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"] == "root"
    assert (await client.post(f"/api/legal/matters/{mid}/close",
                              headers=tokens["auditor"])).status_code == 403
    closed = await client.post(f"/api/legal/matters/{mid}/close", headers=tokens["legal"])
    assert closed.json()["state"] == "closed"
    again = await client.post(f"/api/legal/matters/{mid}/close", headers=tokens["legal"])
    assert again.status_code == 409


async def test_override_narrowed_over_the_api(client: httpx.AsyncClient, app: App,
                                             tokens: dict[str, dict[str, str]]) -> None:
    await _bob(app)
    filed = await client.post("/api/legal/matters", headers=tokens["legal"],
                              json={"request": _request(["subscriber", "content"])})
    mid = filed.json()["id"]
    unknown = await client.post(f"/api/legal/matters/{mid}/decision", headers=tokens["legal"],
                                json={"override": "reject", "justification": "x",
                                      "categories": ["traffic"]})
    assert unknown.status_code == 422 and "traffic" in unknown.text
    decided = await client.post(f"/api/legal/matters/{mid}/decision", headers=tokens["legal"],
                                json={"override": "reject", "justification": "Overbroad.",
                                      "categories": ["content"]})
    assert decided.status_code == 200, decided.text
    findings = decided.json()["decision"]["targets"][BOB]
    assert findings["content"]["outcome"] == "reject"
    assert findings["subscriber"]["outcome"] != "reject"
    assert not findings["subscriber"]["policies"][0].startswith("override:")


async def test_owner_reads_notices_with_the_mail_password(
        client: httpx.AsyncClient, app: App, tokens: dict[str, dict[str, str]]) -> None:
    await _bob(app)
    await app.accounts.create(CAROL, "eu-dublin", PASSWORD)
    assert (await client.get("/api/me/notices")).status_code == 401
    assert (await client.get("/api/me/notices", auth=(BOB, "wrong password"))
            ).status_code == 401
    empty = await client.get("/api/me/notices", auth=(BOB, PASSWORD))
    assert empty.json() == {"account": BOB, "notices": []}
    filed = await client.post("/api/legal/matters", headers=tokens["legal"],
                              json={"request": _request(["subscriber"])})
    mid = filed.json()["id"]
    await client.post(f"/api/legal/matters/{mid}/decision", json={"accept": True},
                      headers=tokens["legal"])
    notices = (await client.get("/api/me/notices", auth=(BOB, PASSWORD))).json()["notices"]
    assert [n["matter"] for n in notices] == [mid]
    assert f"Reference: {mid}" in notices[0]["text"]
    assert "  - subscriber data: your address" in notices[0]["text"]  # in plain words
    # The same notice was delivered to the INBOX.
    session = await app.accounts.authenticate(BOB, PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    assert inbox.messages == 2
    # Another owner sees only their own (none); an operator's credentials do not work.
    carol = await client.get("/api/me/notices", auth=(CAROL, PASSWORD))
    assert carol.json() == {"account": CAROL, "notices": []}
    assert (await client.get("/api/me/notices", auth=("lee", OPERATOR_PASSWORD))
            ).status_code == 401
    assert (await client.get("/api/me/notices", headers=tokens["admin"])).status_code == 401


async def test_access_feed_is_mounted(client: httpx.AsyncClient, app: App) -> None:
    await _bob(app)
    assert (await client.get("/api/access/events")).status_code == 401
    feed = await client.get("/api/access/events", auth=(BOB, PASSWORD))
    assert feed.status_code == 200, feed.text
    kinds = [e["event"]["type"] for e in feed.json()["events"]]
    assert "admin:account:created" in kinds


async def test_no_route_returns_mail(client: httpx.AsyncClient, app: App,
                                     tokens: dict[str, dict[str, str]]) -> None:
    """Walk the whole workflow, including a content disclosure, as every role and as
    the owner, then call every GET route: no response holds the message's plaintext
    or any piece of its sealed bytes."""
    await _bob(app)
    ref = await app.accounts.resolve(BOB)
    cell = app.cells.get(ref.region)
    [box] = [b for b in await cell.store.list_mailboxes(ref.record.id) if b.name == "INBOX"]
    [msg] = await cell.store.list_messages(box.id)
    sealed = await cell.blobs.get(msg.blob_id)
    needles = [MARKER]
    for data in (sealed, msg.summary):
        piece = data[120:152]
        needles += [piece.hex(), base64.b64encode(piece).decode()[:40],
                    base64.urlsafe_b64encode(piece).decode()[:40]]

    responses: list[httpx.Response] = []
    filed = await client.post("/api/legal/matters", headers=tokens["legal"],
                              json={"request": _request(["content", "traffic",
                                                         "subscriber"])})
    responses.append(filed)
    mid = filed.json()["id"]
    decided = await client.post(f"/api/legal/matters/{mid}/decision",
                                json={"accept": True}, headers=tokens["legal"])
    responses.append(decided)
    assert decided.json()["package"], "a content disclosure writes a package"
    responses.append(await client.post("/api/legal/tick", headers=tokens["legal"]))

    schema = (await client.get("/openapi.json")).json()
    gets = [p for p, ops in schema["paths"].items() if "get" in ops]
    for path in gets:
        url = path.replace("{matter_id}", mid).replace("{address}", BOB)
        for headers in tokens.values():
            responses.append(await client.get(url, headers=headers))
        responses.append(await client.get(url, auth=(BOB, PASSWORD)))
        responses.append(await client.get(url, params={"open": "true"},
                                          headers=tokens["admin"]))
    assert all(r.status_code < 500 for r in responses)
    assert sum(r.status_code == 200 for r in responses) >= 2 * len(gets)
    for r in responses:
        for needle in needles:
            assert needle not in r.text, f"{r.request.method} {r.request.url} leaks mail"


async def test_domain_errors_map_to_statuses(client: httpx.AsyncClient,
                                             tokens: dict[str, dict[str, str]]) -> None:
    missing = await client.get("/api/legal/matters/M-nope", headers=tokens["auditor"])
    assert missing.status_code == 404
    malformed = await client.post("/api/legal/matters", headers=tokens["legal"],
                                  json={"request": _request(["content"],
                                                            instrument="letter")})
    assert malformed.status_code == 422 and "instrument" in malformed.text
    both = await client.post("/api/legal/matters/M-nope/decision", headers=tokens["legal"],
                             json={"accept": True, "override": "reject"})
    assert both.status_code == 422


async def test_admin_moves_and_deletes_accounts(client: httpx.AsyncClient, app: App,
                                                tokens: dict[str, dict[str, str]]) -> None:
    await _bob(app)
    for role in ("legal", "auditor"):
        assert (await client.get("/api/accounts", headers=tokens[role])).status_code == 403
        assert (await client.post(f"/api/accounts/{BOB}/move", json={"region": "eu-dublin"},
                                  headers=tokens[role])).status_code == 403
        assert (await client.delete(f"/api/accounts/{BOB}",
                                    headers=tokens[role])).status_code == 403
    listed = await client.get("/api/accounts", headers=tokens["admin"])
    assert [(a["address"], a["region"]) for a in listed.json()] == [(BOB, "us-east")]
    where = await client.get("/api/me", auth=(BOB, PASSWORD))
    assert where.json()["region"] == "us-east" and where.json()["country"] == "US"

    filed = await client.post("/api/legal/matters", headers=tokens["legal"],
                              json={"request": _request(["subscriber"])})
    mid = filed.json()["id"]
    blocked = await client.post(f"/api/accounts/{BOB}/move", json={"region": "eu-dublin"},
                                headers=tokens["admin"])
    assert blocked.status_code == 409 and mid in blocked.json()["detail"]
    assert (await client.delete(f"/api/accounts/{BOB}",
                                headers=tokens["admin"])).status_code == 409
    await client.post(f"/api/legal/matters/{mid}/close", headers=tokens["legal"])

    moved = await client.post(f"/api/accounts/{BOB}/move", json={"region": "eu-dublin"},
                              headers=tokens["admin"])
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"address": BOB, "region": "eu-dublin"}
    where = await client.get("/api/me", auth=(BOB, PASSWORD))
    assert where.json()["region"] == "eu-dublin" and where.json()["country"] == "IE"
    nowhere = await client.post(f"/api/accounts/{BOB}/move", json={"region": "mars-1"},
                                headers=tokens["admin"])
    assert nowhere.status_code == 404
    assert (await client.delete(f"/api/accounts/{BOB}",
                                headers=tokens["admin"])).status_code == 204
    assert (await client.get("/api/me", auth=(BOB, PASSWORD))).status_code == 401
    assert (await client.delete(f"/api/accounts/{BOB}",
                                headers=tokens["admin"])).status_code == 404
    feed = await client.get("/api/access/events", auth=(BOB, PASSWORD))
    assert feed.status_code == 401  # the account is gone, its log entries are not
    kinds = _kinds(app)
    assert "admin:account:moved" in kinds and "admin:account:deleted" in kinds


def _kinds(app: App) -> list[str]:
    log = app.audit.log  # type: ignore[attr-defined]
    out = []
    for _, leaf in log.iter_leaves(0, log.size):
        record = decode(leaf)
        if record.event is not None:
            out.append(str(record.event.type))
    return out


class _CountingKdf:
    """A KdfRunner stand-in that records how many derivations overlap."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0

    async def run(self, func: Any, *, client: str = "") -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.01)
            return await asyncio.to_thread(func)
        finally:
            self.running -= 1


async def test_operator_login_flood_takes_one_kdf_slot(app: App) -> None:
    """Guessing at the operator login must not starve mail logins of the shared
    Argon2id pool: operator password checks run one at a time."""
    kdf = _CountingKdf()
    store = OperatorStore(app.config.control_dir / "flood", fsync=False)
    service = OperatorService(store, kdf, _params(app), app.audit)  # type: ignore[arg-type]
    try:
        await service.add("eve", "auditor", OPERATOR_PASSWORD)
        kdf.most = 0
        guesses = [service.authenticate(name, "wrong guess")
                   for name in ("eve", "nobody") * 4]
        results = await asyncio.gather(*guesses, return_exceptions=True)
        assert all(isinstance(r, AuthenticationFailed) for r in results)
        assert kdf.most == 1
    finally:
        await store.close()
