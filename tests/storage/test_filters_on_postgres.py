"""Filters with cells in PostgreSQL: the script lives in its account's region
database only, sealed (no plaintext in any row), and runs at delivery over real SMTP
(issue 16 point 3)."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from test_addresses_on_postgres import pg_config, rows

from letterlock.app import initialise, open_app
from letterlock.config import Config
from letterlock.services.accounts.setup import InitOptions
from smtp.conftest import ALICE, BOB, start_world
from support.env import PASSWORD
from support.postgres import PostgresServer

__all__ = ["pg_config"]


def send(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("someone@remote.test", [ALICE],
                               b"Subject: quarterly numbers\r\n\r\nHello\r\n")


async def test_filters_on_postgres(pg_config: tuple[Config, str],
                                   postgres_server: PostgresServer, tmp_path: Path) -> None:
    config, tag = pg_config
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        await app.accounts.create(BOB, "eu-dublin", PASSWORD)
        session = await app.accounts.authenticate(ALICE, PASSWORD)
        await app.filters.put(session, "sort", 'require ["fileinto", "mailbox"];\r\n'
                              'if header :contains "subject" "quarterly" '
                              '{ fileinto :create "Reports"; }\r\n', via="test")
        await app.filters.activate(session, "sort", via="test")
        world = await start_world(app, tmp_path)
        try:
            assert await asyncio.to_thread(send, world.mx_port) == {}
            box = await app.mailboxes.get_mailbox(session, "Reports")
            assert len(await app.mailboxes.messages(session, box.id)) == 1
        finally:
            await world.server.close()

    def db(name: str) -> str:
        return postgres_server.database_url(f"lltest_{tag}_{name}")

    stored = rows(db("us-east"), "SELECT account, name, active, sealed, delivery "
                                 "FROM sieve_scripts")
    assert [(a, n, act) for a, n, act, _, _ in stored] == [(ALICE, "sort", True)]
    assert b"quarterly" not in bytes(stored[0][3]) + bytes(stored[0][4])  # type: ignore[arg-type]
    # The other region holds nothing of Alice's filter (its table may not even exist).
    [(table,)] = rows(db("eu-dublin"), "SELECT to_regclass('sieve_scripts')")
    if table is not None:
        assert rows(db("eu-dublin"), "SELECT count(*) FROM sieve_scripts") == [(0,)]
