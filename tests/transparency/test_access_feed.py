"""The access feed over HTTP: the owner, authenticated with the mail password, sees
every readable event about their account with a proof that verifies offline; events
under an active non-disclosure order stay out until revealed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from letterlock.app import App
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.verify import check_inclusion_bundle
from letterlock.http.access_feed import make_access_feed_router
from letterlock.services.transparency.access_feed import AccessFeed
from support.env import PASSWORD

BOB = "bob@example.test"
CAROL = "carol@example.test"


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    await app.accounts.create(BOB, "us-east", PASSWORD)
    await app.accounts.create(CAROL, "eu-dublin", PASSWORD)
    feed = AccessFeed(app.config.control_dir / "audit")
    api = FastAPI()
    api.include_router(make_access_feed_router(lambda: feed, lambda: app.accounts))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://feed.test") as c:
        yield c
    feed.close()


def gagged(account: str) -> AuditEvent:
    return AuditEvent(EventType.LEGAL_PRODUCTION_EXECUTED, "legal-team", datetime.now(UTC),
                      account=account, matter="M-7",
                      sealed_until=datetime.now(UTC) + timedelta(days=90))


async def feed_of(client: httpx.AsyncClient, who: str, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/access/events", auth=(who, PASSWORD), params=params)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


async def test_owner_sees_own_events_with_verifiable_proofs(
    app: App, client: httpx.AsyncClient
) -> None:
    imported = await app.audit.record(AuditEvent(
        EventType.ADMIN_MAIL_IMPORTED, "operator", datetime.now(UTC), account=BOB))
    await app.audit.record(AuditEvent(
        EventType.ADMIN_MAIL_IMPORTED, "operator", datetime.now(UTC), account=CAROL))
    doc = await feed_of(client, BOB)
    assert doc["account"] == BOB
    types = [e["event"]["type"] for e in doc["events"]]
    assert types == ["admin:account:created", "admin:mail:imported"]
    assert doc["events"][-1]["index"] == imported
    key = bytes.fromhex(doc["head"]["public_key"])
    for item in doc["events"]:
        result = check_inclusion_bundle(item["proof"], key)
        assert result.index == item["index"]
        assert result.leaf["event"]["account"] == BOB


async def test_events_under_an_active_order_stay_out_until_revealed(
    app: App, client: httpx.AsyncClient
) -> None:
    sealed = await app.audit.record(gagged(BOB))
    before = await feed_of(client, BOB)
    assert sealed not in [e["index"] for e in before["events"]]
    assert all(e["event"]["type"] != "legal:production:executed" for e in before["events"])
    revealed = await app.audit.reveal(sealed, "legal-team")  # type: ignore[attr-defined]
    after = await feed_of(client, BOB)
    item = after["events"][-1]
    assert item["index"] == revealed
    assert item["kind"] == "reveal"
    assert item["committed_as"] == sealed
    assert item["event"]["type"] == "legal:production:executed"
    assert item["event"]["matter"] == "M-7"
    result = check_inclusion_bundle(item["proof"])
    assert result.revealed_commitment == sealed
    carol = await feed_of(client, CAROL)
    assert all(e["event"]["account"] == CAROL for e in carol["events"])


async def test_paging(app: App, client: httpx.AsyncClient) -> None:
    for _ in range(5):
        await app.audit.record(AuditEvent(
            EventType.ADMIN_MAIL_IMPORTED, "operator", datetime.now(UTC), account=BOB))
    seen: list[int] = []
    after = -1
    while True:
        doc = await feed_of(client, BOB, after=after, limit=2)
        seen += [e["index"] for e in doc["events"]]
        if doc["next_after"] is None:
            break
        after = doc["next_after"]
    assert len(seen) == 6 and seen == sorted(seen)


async def test_wrong_or_missing_password_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/access/events", auth=(BOB, "wrong password!"))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Basic")
    assert (await client.get("/api/access/events")).status_code == 401
    resp = await client.get("/api/access/events", auth=("nobody@example.test", PASSWORD))
    assert resp.status_code == 401
