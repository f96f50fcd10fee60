"""SMTP fixtures: the real application on a temp HOME (tests/conftest.py `app`), two
accounts in two regions, and the SMTP listeners on ephemeral loopback ports."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import pytest

from letterlock.app import App
from letterlock.config import SmtpConfig
from letterlock.services.accounts import certificates
from letterlock.smtp.limits import LimitSettings
from letterlock.smtp.server import SmtpServer
from support.env import PASSWORD

ALICE = "alice@example.test"  # us-east
BOB = "bob@example.test"  # eu-dublin
MAX_BYTES = 256 * 1024


@dataclass
class World:
    app: App
    server: SmtpServer
    mx_port: int
    submission_port: int
    lmtp_port: int | None
    client_tls: ssl.SSLContext

    async def inbox(self, address: str, password: str = PASSWORD) -> list[bytes]:
        """Every message in ``address``'s INBOX, opened with the account key."""
        session = await self.app.accounts.authenticate(address, password)
        box = await self.app.mailboxes.get_mailbox(session, "INBOX")
        msgs = await self.app.mailboxes.messages(session, box.id)
        bodies = await self.app.mailboxes.bodies(session, msgs)
        return [bodies[m.uid] for m in msgs]


def server_tls(tmp: Path) -> ssl.SSLContext:
    cert, key = tmp / "tls" / "cert.pem", tmp / "tls" / "key.pem"
    certificates.make_self_signed(cert, key, "mx.example.test")
    return certificates.server_context(str(cert), str(key), tmp / "tls", "mx.example.test")


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def start_world(app: App, tmp: Path, *, outbound: object | None = None,
                      limits: LimitSettings | None = None,
                      max_bytes: int = MAX_BYTES,
                      dns_resolver: dns.asyncresolver.Resolver | None = None) -> World:
    config = SmtpConfig(port=0, submission_port=0, max_message_bytes=max_bytes)
    server = SmtpServer(app.delivery, app.accounts, outbound, config,  # type: ignore[arg-type]
                        "mx.example.test", server_tls(tmp), lmtp=True, limits=limits,
                        dns_resolver=dns_resolver)
    ports = await server.start()
    return World(app, server, ports.mx, ports.submission, ports.lmtp, client_tls())


@pytest.fixture
async def accounts(app: App) -> App:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    return app


@pytest.fixture
async def world(accounts: App, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(accounts, tmp_path)
    try:
        yield w
    finally:
        await w.server.close()
