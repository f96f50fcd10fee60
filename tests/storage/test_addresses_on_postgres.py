"""Addresses on the scale-out metadata store: with cells in PostgreSQL (a database per
region) the control database holds only names and regions, and each region's
database only its own accounts' links; a group delivered over real SMTP lands in
each member's region (issue 16 point 1)."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from letterlock.app import initialise, open_app
from letterlock.config import Config
from letterlock.services.accounts.setup import InitOptions
from smtp.conftest import ALICE, BOB, start_world
from support.env import PASSWORD, make_config
from support.postgres import PostgresServer


@pytest.fixture
def pg_config(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[tuple[Config, str]]:
    tag = uuid.uuid4().hex[:10]
    config = make_config(tmp_path / "home", LETTERLOCK_STORAGE_POSTGRES_URL=(
        postgres_server.url_template(f"lltest_{tag}")))
    try:
        yield config, tag
    finally:
        postgres_server.drop_databases(f"lltest_{tag}_")


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(query.encode()).fetchall())


def send(port: int, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("someone@remote.test", rcpts,
                               b"Subject: to the team\r\n\r\nHello team\r\n")


async def test_group_and_alias_on_postgres(pg_config: tuple[Config, str],
                                           postgres_server: PostgresServer,
                                           tmp_path: Path) -> None:
    config, tag = pg_config
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        await app.accounts.create(BOB, "eu-dublin", PASSWORD)
        await app.addresses.add_group("team@example.test", [ALICE, BOB])
        await app.addresses.add_alias("sales@example.test", BOB)
        world = await start_world(app, tmp_path)
        try:
            assert await asyncio.to_thread(
                send, world.mx_port, ["team@example.test", "sales+q4@example.test"]) == {}
            assert len(await world.inbox(ALICE)) == 1
            assert len(await world.inbox(BOB)) == 1  # group and alias: one copy
        finally:
            await world.server.close()

    def db(name: str) -> str:
        return postgres_server.database_url(f"lltest_{tag}_{name}")

    assert rows(db("us-east"), "SELECT address, account FROM address_targets") == [
        ("team@example.test", ALICE)]
    assert sorted(rows(db("eu-dublin"), "SELECT address, account FROM address_targets")) == [
        ("sales@example.test", BOB), ("team@example.test", BOB)]
    assert sorted(rows(db("control"), "SELECT address, region_id FROM address_routes")) == [
        ("sales@example.test", "eu-dublin"), ("team@example.test", "eu-dublin"),
        ("team@example.test", "us-east")]
    control_text = repr(rows(db("control"), "SELECT * FROM address_names")
                        + rows(db("control"), "SELECT * FROM address_routes"))
    assert ALICE not in control_text and BOB not in control_text
