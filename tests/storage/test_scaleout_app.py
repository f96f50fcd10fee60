"""The whole application on the scale-out storage: cells in PostgreSQL (a database per
region) and sealed blobs in S3 (a SeaweedFS bucket per region)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from letterlock.app import initialise, open_app
from letterlock.config import Config
from letterlock.services.accounts.setup import InitOptions
from letterlock.storage.postgres import PostgresCellStore
from letterlock.storage.s3 import S3BlobStore
from support.env import PASSWORD, make_config
from support.postgres import PostgresServer
from support.seaweed import Seaweed

REGIONS = ("us-east", "eu-dublin")
SECRET = b"the quarterly numbers are attached"


@pytest.fixture
def scaleout_config(tmp_path: Path, postgres_server: PostgresServer,
                    seaweed: Seaweed) -> Iterator[tuple[Config, str]]:
    """A configuration on PostgreSQL and S3, and the tag naming its databases
    (``lltest_<tag>_<region>``) and buckets (``lltest-<tag>-<region>``)."""
    tag = uuid.uuid4().hex[:10]
    for region in REGIONS:
        seaweed.create_bucket(f"lltest-{tag}-{region}")
    config = make_config(
        tmp_path / "home",
        LETTERLOCK_STORAGE_POSTGRES_URL=postgres_server.url_template(f"lltest_{tag}"),
        LETTERLOCK_STORAGE_S3_ENDPOINT=seaweed.endpoint,
        LETTERLOCK_STORAGE_S3_BUCKET=f"lltest-{tag}-{{region}}",
        LETTERLOCK_STORAGE_S3_ACCESS_KEY=seaweed.access_key,
        LETTERLOCK_STORAGE_S3_SECRET_KEY=seaweed.secret_key,
        LETTERLOCK_STORAGE_S3_REGION=seaweed.region)
    try:
        yield config, tag
    finally:
        postgres_server.drop_databases(f"lltest_{tag}_")
        for region in REGIONS:
            seaweed.delete_bucket(f"lltest-{tag}-{region}")


def bucket_store(weed: Seaweed, bucket: str) -> S3BlobStore:
    return S3BlobStore(bucket, endpoint=weed.endpoint, access_key=weed.access_key,
                       secret_key=weed.secret_key, region=weed.region)


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(query.encode()).fetchall())


async def test_deliver_and_read_back_on_postgres_and_s3(
        scaleout_config: tuple[Config, str], postgres_server: PostgresServer,
        seaweed: Seaweed) -> None:
    config, tag = scaleout_config
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        for region in REGIONS:
            cell = app.cells.get(region)
            assert isinstance(cell.store, PostgresCellStore)
            assert isinstance(cell.blobs, S3BlobStore)
        ref, _recovery = await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
        raw = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
               b"Subject: numbers\r\n\r\n" + SECRET + b"\r\n")
        [result] = await app.delivery.deliver(raw, [ref])
        assert result.ok, result.error

        # Another front-end process (a second app on the same configuration) reads it.
        async with open_app(config) as other:
            session = await other.accounts.authenticate("bob@example.test", PASSWORD)
            inbox = await other.mailboxes.get_mailbox(session, "INBOX")
            [msg] = await other.mailboxes.messages(session, inbox.id)
            assert (await other.mailboxes.bodies(session, [msg]))[msg.uid] == raw
            assert other.mailboxes.open_summary(session, msg).size == len(raw)

    # Where the data is: the Dublin database and bucket, sealed; nothing under HOME's
    # region directories, nothing in the US cell.
    dublin = postgres_server.database_url(f"lltest_{tag}_eu-dublin")
    us = postgres_server.database_url(f"lltest_{tag}_us-east")
    assert [r[0] for r in rows(dublin, "SELECT address FROM accounts")] == ["bob@example.test"]
    try:  # the US cell was never used: its database is created on first use
        assert rows(us, "SELECT address FROM accounts") == []
    except psycopg.OperationalError as exc:
        assert "does not exist" in str(exc)
    [(blob_id,)] = rows(dublin, "SELECT blob_id FROM messages")
    store = bucket_store(seaweed, f"lltest-{tag}-eu-dublin")
    try:
        assert await store.list_ids() == [blob_id]
        sealed = await store.get(str(blob_id))
        assert SECRET not in sealed and b"numbers" not in sealed
    finally:
        await store.close()
    us_bucket = bucket_store(seaweed, f"lltest-{tag}-us-east")
    try:
        assert await us_bucket.list_ids() == []
    finally:
        await us_bucket.close()
    for region in REGIONS:
        region_dir = config.region_dir(region)
        assert not region_dir.exists() or not any(region_dir.rglob("*")), region


async def test_second_process_sees_delivery_and_shares_the_directory(
        scaleout_config: tuple[Config, str]) -> None:
    """Two front-end processes on one configuration: the directory is shared (it lives
    in PostgreSQL, not under HOME), and a delivery by one wakes the other's IDLE
    watchers through LISTEN/NOTIFY."""
    config, _tag = scaleout_config
    await initialise(config, InitOptions())
    assert not (config.control_dir / "control.sqlite3").exists()
    async with open_app(config) as first, open_app(config) as second:
        assert [r.id for r in await second.control.list_regions()] == sorted(REGIONS)
        ref, _ = await first.accounts.create("amy@example.test", "us-east", PASSWORD)
        assert await second.control.lookup("amy@example.test") == "us-east"
        session = await second.accounts.authenticate("amy@example.test", PASSWORD)
        inbox = await second.mailboxes.get_mailbox(session, "INBOX")
        cell = second.cells.get("us-east")
        assert isinstance(cell.store, PostgresCellStore)
        feed = await cell.store.watch_changes()  # listening from here on

        async def pump() -> None:
            async for mailbox_id in feed:
                second.hub.notify(mailbox_id)

        forward = asyncio.create_task(pump())
        try:
            with second.hub.watch(inbox.id) as changed:
                [result] = await first.delivery.deliver(
                    b"Subject: hello\r\n\r\nfrom the other process\r\n", [ref])
                assert result.ok
                await asyncio.wait_for(changed.wait(), 1.0)
        finally:
            forward.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forward
            await feed.aclose()
