"""Passwords cross only TLS (or the loopback interface): a client on another address
is offered no SASL mechanism before STARTTLS and AUTHENTICATE is refused with
ENCRYPT-NEEDED; after STARTTLS the same login works."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import ImapConfig
from letterlock.managesieve.server import ManageSieveServer
from letterlock.sieve import EXTENSIONS
from managesieve.conftest import ALICE, PASSWORD, Client
from smtp.conftest import server_tls


def outward_address() -> str | None:
    """This machine's address on its main interface (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("203.0.113.1", 9))
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


class OutwardClient(Client):
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.response()


@pytest.fixture
async def outward(app: App, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    host = outward_address()
    if host is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    server = ManageSieveServer(app.accounts, app.filters, EXTENSIONS,
                               replace(app.config.sieve, port=0), ImapConfig(),
                               server_tls(tmp_path))
    await server.start(host, 0)
    try:
        yield host, server.port
    finally:
        await server.close()


def session(host: str, port: int) -> list[list[bytes]]:
    c = OutwardClient(host, port)
    out = [c.greeting, c.login(), c.starttls(), c.login()]
    c.close()
    return out


async def test_no_password_in_the_clear(outward: tuple[str, int]) -> None:
    greeting, clear, after_tls, login = await asyncio.to_thread(session, *outward)
    assert b'"SASL" ""' in greeting and b'"STARTTLS"' in greeting
    assert clear[-1].startswith(b"NO (ENCRYPT-NEEDED)")
    assert b'"SASL" "PLAIN"' in after_tls
    assert login[-1].startswith(b"OK")
