"""A tiny scripted IMAP client for protocol tests: sends raw lines, collects raw
responses (literals inline) up to a tagged completion."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass

from letterlock.app import App
from letterlock.imap.server import ImapServer


@dataclass
class Imap:
    """What the ``imap`` fixture provides."""

    app: App
    server: ImapServer
    port: int
    tls_port: int
    user: str
    password: str
    client_ssl: ssl.SSLContext

    async def session(self, select: str | None = None) -> ScriptClient:
        """A connection logged in as ``user``, with mailbox ``select`` selected if
        given."""
        client = await ScriptClient.connect(self.port)
        await client.login(self.user, self.password)
        if select is not None:
            lines = await client.command("s", f"SELECT {select}")
            assert lines[-1].startswith(b"s OK"), lines
        return client


_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class ScriptClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, ssl_ctx: ssl.SSLContext | None = None) -> ScriptClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx,
                                                       limit=2**24)
        client = cls(reader, writer)
        greeting = await client.response()
        assert greeting.startswith(b"* OK"), greeting
        return client

    async def response(self, timeout: float = 10) -> bytes:
        """One response, literals included."""
        async with asyncio.timeout(timeout):
            line = await self.reader.readuntil(b"\n")
            out = line
            while (m := _LITERAL.search(line)) is not None:
                out += await self.reader.readexactly(int(m.group(1)))
                line = await self.reader.readuntil(b"\n")
                out += line
        return out

    def send(self, data: bytes) -> None:
        self.writer.write(data if data.endswith(b"\r\n") else data + b"\r\n")

    async def command(self, tag: str, text: bytes | str) -> list[bytes]:
        """Send ``tag text`` and return every response up to and including the tagged
        one (line endings stripped)."""
        raw = text.encode() if isinstance(text, str) else text
        self.writer.write(tag.encode() + b" " + raw + b"\r\n")
        return await self.until(tag)

    async def until(self, tag: str, timeout: float = 10) -> list[bytes]:
        out = []
        while True:
            resp = await self.response(timeout)
            out.append(resp.rstrip(b"\r\n"))
            if resp.startswith(tag.encode() + b" "):
                return out

    async def login(self, user: str, password: str) -> None:
        lines = await self.command("L", f'LOGIN "{user}" "{password}"')
        assert lines[-1].startswith(b"L OK"), lines

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def uid_search_answers(client: ScriptClient, queries: list[str]) -> list[bytes]:
    """The first response line of ``UID SEARCH CHARSET UTF-8 <query>`` for each query
    (each must complete OK)."""
    out = []
    for i, query in enumerate(queries):
        lines = await client.command(f"q{i}", b"UID SEARCH CHARSET UTF-8 " + query.encode())
        assert lines[-1].startswith(f"q{i} OK".encode()), (query, lines)
        out.append(lines[0])
    return out
