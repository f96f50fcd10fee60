"""`letterlock backup` under load and `letterlock restore` on the scale-out storage
(issue 15 point 4): the region's metadata in its own PostgreSQL database
(LETTERLOCK_TEST_POSTGRES_URL, or a throwaway cluster) and its sealed blobs in a
SeaweedFS bucket. Destroying the region drops its database and empties its bucket;
the scenario is support/backup_scenario.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from letterlock.storage.s3 import S3BlobStore
from support import mail_scenario
from support.backup_scenario import run_scenario
from support.postgres import PostgresServer
from support.seaweed import Seaweed

REGIONS = ("us-east", "eu-dublin")


def test_backup_under_load_then_restore_on_postgres_and_s3(
        tmp_path: Path, postgres_server: PostgresServer, seaweed: Seaweed) -> None:
    tag = uuid.uuid4().hex[:10]
    for region in REGIONS:
        seaweed.create_bucket(f"lltest-{tag}-{region}")
    home = tmp_path / "home"
    home.mkdir()
    # In the configuration file, so that serve and every command use it.
    (home / "letterlock.toml").write_text(
        "[storage]\n"
        f'postgres_url = "{postgres_server.url_template(f"lltest_{tag}")}"\n'
        f's3_endpoint = "{seaweed.endpoint}"\n'
        f's3_bucket = "lltest-{tag}-{{region}}"\n'
        f's3_access_key = "{seaweed.access_key}"\n'
        f's3_secret_key = "{seaweed.secret_key}"\n'
        f's3_region = "{seaweed.region}"\n', encoding="utf-8")

    def destroy() -> None:
        postgres_server.drop_databases(f"lltest_{tag}_us-east")
        bucket = S3BlobStore(f"lltest-{tag}-us-east", endpoint=seaweed.endpoint,
                             access_key=seaweed.access_key, secret_key=seaweed.secret_key,
                             region=seaweed.region)

        async def empty() -> None:
            await bucket.delete_many(await bucket.list_ids())
            assert await bucket.list_ids() == []
            await bucket.close()

        asyncio.run(empty())

    try:
        mail_scenario.prepare(home)
        run_scenario(tmp_path, home, destroy, "postgres+s3")
    finally:
        postgres_server.drop_databases(f"lltest_{tag}_")
        for region in REGIONS:
            seaweed.delete_bucket(f"lltest-{tag}-{region}")
