"""Connections not yet logged in (issue 13 point 6): capped per client address and per
process, with ``* BYE Too many connections`` and one log line for a refused one; the
login timeout is a deadline from connecting, not reset by NOOP or a stalled
AUTHENTICATE. Real sockets; other client addresses are other loopback addresses
(127.0.0.2, ...), which Linux routes to the listener on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from imap_script import Imap, ScriptClient

from letterlock.errors import ConfigError
from letterlock.imap.server import ImapServer
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent


@asynccontextmanager
async def serving(imap: Imap, **options: Any) -> AsyncIterator[ImapServer]:
    config = dataclasses.replace(imap.app.config.imap, **options)
    server = ImapServer(imap.app.accounts, imap.app.mailboxes, config, None)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


async def connect_from(port: int, source: str) -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=(source, 0))
    async with asyncio.timeout(10):
        greeting = await reader.readline()
    return reader, writer, greeting


async def greeted(port: int, source: str = "127.0.0.1") -> ScriptClient:
    reader, writer, greeting = await connect_from(port, source)
    assert greeting.startswith(b"* OK"), greeting
    return ScriptClient(reader, writer)


async def refused(port: int, source: str = "127.0.0.1") -> None:
    reader, writer, greeting = await connect_from(port, source)
    assert greeting == b"* BYE Too many connections\r\n"
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) is LogEvent.CLIENT_REFUSED]


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (bounded) for the server to notice a client went away."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server did not catch up")


async def test_one_address_is_capped_and_a_login_frees_its_slot(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    async with serving(imap, max_unauthenticated_per_address=2,
                       trusted_networks="") as server:
        assert server.port is not None
        first, second = await greeted(server.port), await greeted(server.port)
        await refused(server.port)
        assert refusals(caplog) == [{"ip": "127.0.0.1", "limit": "imap-connections"}]
        # Another address is not held to this one's cap.
        other = await greeted(server.port, "127.0.0.2")
        # A connection that logs in no longer counts; one that ends neither.
        await first.login(imap.user, imap.password)
        third = await greeted(server.port)
        await refused(server.port)
        await second.close()
        await eventually(lambda: server._admission.count == 2)
        fourth = await greeted(server.port)
        assert (await first.command("n", "NOOP"))[-1].startswith(b"n OK")
        for client in (first, third, fourth, other):
            await client.close()
        await eventually(lambda: server._admission.count == 0)
    assert len(refusals(caplog)) == 2


async def test_the_process_total_is_capped_across_addresses(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    async with serving(imap, max_unauthenticated=2, trusted_networks="") as server:
        assert server.port is not None
        clients = [await greeted(server.port, "127.0.0.2"),
                   await greeted(server.port, "127.0.0.3")]
        await refused(server.port, "127.0.0.4")
        assert refusals(caplog) == [{"ip": "127.0.0.4", "limit": "imap-connections-total"}]
        # The refused one was never counted, and logged-in sessions are not counted.
        await clients[0].login(imap.user, imap.password)
        clients.append(await greeted(server.port, "127.0.0.4"))
        for client in clients:
            await client.close()


async def test_trusted_networks_are_exempt(imap: Imap,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    async with serving(imap, max_unauthenticated_per_address=1, max_unauthenticated=1,
                       trusted_networks="127.0.0.0/30") as server:
        assert server.port is not None
        clients = [await greeted(server.port, "127.0.0.2") for _ in range(3)]
        assert server._admission.count == 0
        # Outside the trusted block the caps hold.
        clients.append(await greeted(server.port, "127.0.0.9"))
        await refused(server.port, "127.0.0.9")
        for client in clients:
            await client.close()
    assert [r["limit"] for r in refusals(caplog)] == ["imap-connections"]


def test_a_bad_trusted_network_names_the_imap_option(imap: Imap) -> None:
    config = dataclasses.replace(imap.app.config.imap, trusted_networks="10.0.0.0/33")
    with pytest.raises(ConfigError, match=r"imap\.trusted_networks"):
        ImapServer(imap.app.accounts, imap.app.mailboxes, config, None)


async def test_noop_does_not_extend_the_login_deadline(imap: Imap) -> None:
    async with serving(imap, login_timeout_s=1) as server:
        assert server.port is not None
        client = await greeted(server.port)
        # A client that keeps talking but never logs in is still logged out.
        for _ in range(100):
            client.send(b"n NOOP")
            line = await client.response()
            if line.startswith(b"* BYE"):
                break
            assert line.startswith(b"n OK"), line
            await asyncio.sleep(0.1)
        assert line.startswith(b"* BYE Autologout"), line
        assert await client.reader.read() == b""


async def test_a_stalled_authenticate_is_logged_out(imap: Imap) -> None:
    async with serving(imap, login_timeout_s=1) as server:
        assert server.port is not None
        client = await greeted(server.port)
        client.send(b"a AUTHENTICATE PLAIN")
        assert (await client.response()).startswith(b"+")
        # No answer to the challenge: the deadline ends the exchange and the session.
        assert (await client.response()).startswith(b"* BYE Autologout")
        assert await client.reader.read() == b""


async def test_a_login_lifts_the_deadline(imap: Imap) -> None:
    async with serving(imap, login_timeout_s=2) as server:
        assert server.port is not None
        client = await greeted(server.port)
        await client.login(imap.user, imap.password)
        await asyncio.sleep(2.5)  # past the login deadline: a logged-in session stays
        assert (await client.command("n", "NOOP"))[-1].startswith(b"n OK")
        await client.close()
