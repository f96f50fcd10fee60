"""The legal HTTP API: same service functions, operator roles enforced, OpenAPI served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from letterlock.app import App
from letterlock.errors import AlreadyExists, NotFound, Refused, StorageError
from letterlock.http.errors import status_for
from letterlock.http.legal_api import OperatorIdentity

from .harness import make_request
from .legal_api_client import legal_api_client

TOKENS = {"t-legal": OperatorIdentity("lee", "legal"),
          "t-audit": OperatorIdentity("ada", "auditor")}


@pytest.fixture
async def client(app: App, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with legal_api_client(app, TOKENS) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_file_decide_and_roles(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/legal/matters")).status_code == 401
    body = {"request": make_request()}
    denied = await client.post("/api/legal/matters", json=body, headers=_auth("t-audit"))
    assert denied.status_code == 403
    filed = await client.post("/api/legal/matters", json=body, headers=_auth("t-legal"))
    assert filed.status_code == 201, filed.text
    matter = filed.json()
    assert matter["state"] == "evaluated"
    assert matter["recommendation"]["targets"]["bob@example.test"]["content"]["outcome"] \
        == "no-data"
    listed = await client.get("/api/legal/matters?open=true", headers=_auth("t-audit"))
    assert [m["id"] for m in listed.json()] == [matter["id"]]
    bad = await client.post(f"/api/legal/matters/{matter['id']}/decision",
                            json={"override": "reject"}, headers=_auth("t-legal"))
    assert bad.status_code == 422 and "justification" in bad.text
    ok = await client.post(f"/api/legal/matters/{matter['id']}/decision",
                           json={"accept": True}, headers=_auth("t-legal"))
    assert ok.status_code == 200, ok.text
    assert (await client.get("/api/legal/matters/nope", headers=_auth("t-audit"))
            ).status_code == 404
    malformed = await client.post("/api/legal/matters",
                                  json={"request": make_request(instrument="letter")},
                                  headers=_auth("t-legal"))
    assert malformed.status_code == 422 and "instrument" in malformed.text


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/api/legal/matters" in schema["paths"]


def test_domain_errors_have_the_statuses_of_every_other_route() -> None:
    assert [status_for(e("x")) for e in (NotFound, AlreadyExists, Refused, StorageError)] \
        == [404, 409, 409, 503]
