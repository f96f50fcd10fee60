"""IMAP fixtures: the real application on a temp HOME, an account with mail, and the
IMAP server listening on ephemeral loopback ports (plain+STARTTLS and implicit TLS)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from imap_script import Imap

from letterlock.app import App
from letterlock.imap.server import ImapServer
from letterlock.services.accounts.certificates import make_self_signed
from support.env import PASSWORD

USER = "alice@example.test"
OTHER = "bob@example.test"


@pytest.fixture
async def imap(app: App, tmp_path: Path) -> AsyncIterator[Imap]:
    await app.accounts.create(USER, "us-east", PASSWORD)
    await app.accounts.create(OTHER, "eu-dublin", PASSWORD)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.check_hostname = False
    server = ImapServer(app.accounts, app.mailboxes, app.config.imap, server_ctx)
    await server.start("127.0.0.1", 0, 0)
    assert server.port is not None and server.tls_port is not None
    try:
        yield Imap(app, server, server.port, server.tls_port, USER, PASSWORD, client_ctx)
    finally:
        await server.close()


@pytest.fixture
def cert_path(imap: Imap, tmp_path: Path) -> Path:
    return tmp_path / "cert.pem"
