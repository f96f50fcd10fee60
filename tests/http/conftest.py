"""The real FastAPI application on a throwaway HOME, driven by httpx in process, with
one operator per role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from letterlock.app import App
from letterlock.http.server import _open_access_feed, make_api

OPERATOR_PASSWORD = "operator password"
ROLE_NAMES = {"admin": "root", "legal": "lee", "auditor": "ada"}


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    for role, name in ROLE_NAMES.items():
        await app.operators.add(name, role, OPERATOR_PASSWORD, actor="test")
    feed = _open_access_feed(app)
    api = make_api(app, access_feed=feed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://letterlock.test") as c:
        yield c
    if feed is not None:
        await asyncio.to_thread(feed.close)


@pytest.fixture
async def tokens(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """role -> Authorization header with a fresh bearer token."""
    out = {}
    for role, name in ROLE_NAMES.items():
        r = await client.post("/api/operator/tokens", auth=(name, OPERATOR_PASSWORD))
        assert r.status_code == 201, r.text
        out[role] = {"Authorization": f"Bearer {r.json()['token']}"}
    return out
