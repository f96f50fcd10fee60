"""Cells on PostgreSQL: every process of `letterlock serve` (the main one and its
IMAP worker) follows the database's change feed, so IDLE is woken by a change that
another host made (here: an application on another HOME, sharing only the
database, so it is not on this server's peer bus)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import time
import uuid
from pathlib import Path

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import children, start_serve
from support.connections import connect_served_by
from support.env import PASSWORD
from support.env import make_config as base_config
from support.postgres import PostgresServer

ALICE = "alice@example.test"


def _imaps(port: int) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
    imap.login(ALICE, PASSWORD)
    return imap


def _exists_within(imap: imaplib.IMAP4_SSL, count: int, timeout: float) -> float:
    start = time.monotonic()
    imap.sock.settimeout(timeout)
    while True:
        words = imap.readline().split()
        assert words, "IMAP connection closed"
        if len(words) >= 3 and words[2] == b"EXISTS" and int(words[1]) >= count:
            return time.monotonic() - start


async def test_idle_in_every_process_hears_of_another_hosts_append(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    tag = uuid.uuid4().hex[:10]
    env = {"LETTERLOCK_STORAGE_POSTGRES_URL": postgres_server.url_template(f"lltest_{tag}")}
    here, there = tmp_path / "here", tmp_path / "there"
    try:
        await initialise(base_config(here, **env), InitOptions())
        await initialise(base_config(there, **env), InitOptions())
        async with open_app(base_config(there, **env)) as other_host:
            ref, _ = await other_host.accounts.create(ALICE, "us-east", PASSWORD)
            served = await asyncio.to_thread(
                start_serve, here, {**env, "LETTERLOCK_IMAP_PROCESSES": "2"})
            try:
                [worker] = children(served.proc.pid)
                for count, pid in enumerate([served.proc.pid, worker], 1):
                    imap = await asyncio.to_thread(
                        connect_served_by, pid, lambda: _imaps(served.imaps),
                        lambda c: c.sock, lambda c: c.logout())
                    imap.select("INBOX")
                    imap.send(b"i1 IDLE\r\n")
                    assert imap.readline().startswith(b"+")
                    await other_host.mailboxes.append(
                        ref, "INBOX", f"Subject: from afar {count}\r\n\r\nhi\r\n".encode())
                    waited = await asyncio.to_thread(_exists_within, imap, count, 5.0)
                    assert waited < 1.0, f"process {pid} heard after {waited:.2f} s"
                    imap.send(b"DONE\r\n")
                    while not imap.readline().startswith(b"i1 "):
                        pass
                    imap.logout()
            finally:
                served.proc.terminate()
                served.proc.wait(30)
    finally:
        postgres_server.drop_databases(f"lltest_{tag}_")
