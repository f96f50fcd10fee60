"""A ManageSieve listener on an ephemeral loopback port over the test app, and a small
line client (raw sockets: the protocol tests' wire)."""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import Config, ImapConfig
from letterlock.managesieve.server import ManageSieveServer
from letterlock.sieve import EXTENSIONS
from smtp.conftest import ALICE, BOB, client_tls, server_tls
from support.env import PASSWORD, make_config

__all__ = ["ALICE", "BOB", "PASSWORD"]


@dataclass
class Sieve:
    app: App
    server: ManageSieveServer
    port: int


@pytest.fixture
def config(home: Path) -> Config:
    # Small limits, so the quota answers can be seen with small scripts.
    return make_config(home, LETTERLOCK_SIEVE_MAX_SCRIPT_BYTES="4096",
                       LETTERLOCK_SIEVE_MAX_ACCOUNT_BYTES="6000")


@pytest.fixture
async def sieve_server(app: App, tmp_path: Path) -> AsyncIterator[Sieve]:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    server = ManageSieveServer(app.accounts, app.filters, EXTENSIONS,
                               replace(app.config.sieve, port=0),
                               ImapConfig(), server_tls(tmp_path))
    await server.start("127.0.0.1", 0)
    try:
        yield Sieve(app, server, server.port)
    finally:
        await server.close()


class Client:
    """Blocking line client: send lines, read up to the final OK/NO/BYE."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.response()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> list[bytes]:
        """Lines up to and including the final OK, NO or BYE (literals inlined)."""
        lines: list[bytes] = []
        while True:
            line = self.file.readline()
            if not line:
                return lines
            lines.append(line.rstrip(b"\r\n"))
            if line.rstrip().endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1:line.rindex(b"}")].rstrip(b"+"))
                lines.append(self.file.read(size))
                continue
            if line[:2] in (b"OK", b"NO") or line[:3] == b"BYE":
                return lines

    def command(self, data: bytes) -> list[bytes]:
        self.send(data + b"\r\n")
        return self.response()

    def starttls(self) -> list[bytes]:
        assert self.command(b"STARTTLS")[-1].startswith(b"OK")
        self.sock = client_tls().wrap_socket(self.sock, server_hostname="mx.example.test")
        self.file = self.sock.makefile("rb")
        return self.response()

    def login(self, user: str = ALICE, password: str = PASSWORD) -> list[bytes]:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"'.encode())

    def close(self) -> None:
        self.sock.close()
