"""IMAP over TLS (implicit on the IMAPS port, and STARTTLS) through letterlock's own TLS
layer (imap/tls.py): large APPEND literals and FETCH responses both ways, pipelining, a
client that does not read while a large response is sent, clients that go away or
never finish the handshake, and real clients (imaplib IMAP4_SSL and STARTTLS)."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import logging
import os
import re
import ssl

import pytest
from imap_script import Imap, ScriptClient

from letterlock.imap import tls

MODES = ["implicit", "starttls"]


def _big_message(size: int) -> bytes:
    head = (b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: large\r\nMessage-ID: <large@example.org>\r\n\r\n")
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return head + body


async def _connect(imap: Imap, mode: str) -> ScriptClient:
    if mode == "implicit":
        c = await ScriptClient.connect(imap.tls_port, imap.client_ssl)
    else:
        c = await ScriptClient.connect(imap.port)
        assert (await c.command("t", "STARTTLS"))[-1].startswith(b"t OK")
        await c.writer.start_tls(imap.client_ssl)
    await c.login(imap.user, imap.password)
    return c


def _literal(response: bytes) -> bytes:
    m = re.search(rb"\{(\d+)\}\r\n", response)
    assert m is not None, response[:200]
    return response[m.end():m.end() + int(m.group(1))]


async def _append(c: ScriptClient, message: bytes, *, plus: bool) -> int:
    """APPEND ``message`` to INBOX (a LITERAL+ or a synchronizing literal); its UID."""
    if plus:
        c.writer.write(b"ap APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    else:
        c.writer.write(b"ap APPEND INBOX {%d}\r\n" % len(message))
        assert (await c.response()).startswith(b"+")
        c.writer.write(message + b"\r\n")
    lines = await c.until("ap", timeout=60)
    m = re.match(rb"ap OK \[APPENDUID \d+ (\d+)\]", lines[-1])
    assert m is not None, lines[-1]
    return int(m.group(1))


@pytest.mark.parametrize("mode", MODES)
async def test_large_append_and_fetch_round_trip_over_tls(imap: Imap, mode: str) -> None:
    c = await _connect(imap, mode)
    message = _big_message(3 * 1024 * 1024)
    first = await _append(c, message, plus=False)
    second = await _append(c, message[::-1], plus=True)
    await c.command("s", "SELECT INBOX")
    for uid, expected in ((first, message), (second, message[::-1])):
        c.send(b"f UID FETCH %d BODY.PEEK[]" % uid)
        response = await c.response(timeout=60)
        assert _literal(response) == expected
        assert (await c.until("f"))[-1].startswith(b"f OK")
    await c.close()


@pytest.mark.parametrize("mode", MODES)
async def test_pipelined_commands_over_tls_answer_in_order(imap: Imap, mode: str) -> None:
    c = await _connect(imap, mode)
    await _append(c, _big_message(20_000), plus=True)
    await c.command("s", "SELECT INBOX")
    c.writer.write(b"".join(b"p%d NOOP\r\np%dx UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n"
                            % (i, i) for i in range(150)))
    tags: list[bytes] = []
    while len(tags) < 300:
        response = await c.response(timeout=30)
        if not response.startswith(b"*"):
            tag, status = response.split(b" ", 2)[:2]
            assert status == b"OK", response
            tags.append(tag)
    assert tags == [t for i in range(150) for t in (b"p%d" % i, b"p%dx" % i)]
    await c.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_does_not_read_gets_large_responses_whole(imap: Imap,
                                                                      mode: str) -> None:
    """The server stops sending (flow control) while the client reads nothing, and
    sends the rest, intact, when it reads again."""
    c = await _connect(imap, mode)
    message = _big_message(4 * 1024 * 1024)
    uid = await _append(c, message, plus=True)
    await c.command("s", "SELECT INBOX")
    c.writer.write(b"".join(b"f%d UID FETCH %d BODY.PEEK[]\r\n" % (i, uid) for i in range(4)))
    await asyncio.sleep(1.0)
    for i in range(4):
        assert _literal(await c.response(timeout=60)) == message
        assert (await c.until(f"f{i}"))[-1].startswith(b"f%d OK" % i)
    await c.close()


@pytest.mark.parametrize("mode", MODES)
async def test_closing_sends_what_waits_for_a_slow_reader_first(imap: Imap, mode: str) -> None:
    """A server shutdown while a large response waits for the client: the client still
    gets all of it, then BYE, then the end of the connection."""
    c = await _connect(imap, mode)
    message = _big_message(4 * 1024 * 1024)
    uid = await _append(c, message, plus=True)
    await c.command("s", "SELECT INBOX")
    c.send(b"f UID FETCH %d BODY.PEEK[]" % uid)
    await asyncio.sleep(0.5)  # the server has filled the socket and waits
    closing = asyncio.ensure_future(imap.server.close())
    await asyncio.sleep(0.5)
    assert _literal(await c.response(timeout=30)) == message
    rest = await c.reader.read()  # to the end of the connection
    assert b"* BYE" in rest, rest[-200:]
    await closing


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("then", ["serve-on", "shut-down"])
async def test_clients_leaving_during_idle_over_tls_log_no_error(
        imap: Imap, mode: str, then: str, caplog: pytest.LogCaptureFixture) -> None:
    """With asyncio's own TLS, clients that closed while the server shut down made
    tracebacks: SSLError APPLICATION_DATA_AFTER_CLOSE_NOTIFY out of the transport's
    shutdown into IDLE ("IMAP IDLE failed"), or AttributeError ('NoneType' object has
    no attribute '_write_appdata') when writing after close ("Unhandled exception in
    client_connected_cb", seen by bench/imap.py at every TLS connection)."""
    caplog.set_level(logging.WARNING)
    clients = []
    for _ in range(20):
        c = await _connect(imap, mode)
        await c.command("s", "SELECT INBOX")
        c.writer.write(b"i IDLE\r\n")
        assert (await c.response()).startswith(b"+")
        clients.append(c)
    for n, c in enumerate(clients):
        c.writer.write(b"DONE\r\nx NOOP\r\n")
        if n % 2:
            c.writer.transport.abort()
        else:
            c.writer.close()
    if then == "shut-down":
        await asyncio.sleep(0)
        await imap.server.close()
    await asyncio.sleep(1.0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    if then == "shut-down":
        return
    c = await _connect(imap, mode)
    assert (await c.command("n", "NOOP"))[-1].startswith(b"n OK")
    await c.close()


async def test_plaintext_on_the_tls_port_is_dropped_quietly(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.tls_port)
    writer.write(b"a1 CAPABILITY\r\n")
    async with asyncio.timeout(10):
        while await reader.read(4096):
            pass  # an alert, then the end
    writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    c = await _connect(imap, "implicit")
    await c.close()


async def test_a_handshake_that_never_comes_is_timed_out(
        imap: Imap, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT_S", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.tls_port)
    async with asyncio.timeout(5):
        assert await reader.read(4096) == b""
    writer.close()


async def test_a_failed_starttls_handshake_ends_the_connection(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    assert (await c.command("t", "STARTTLS"))[-1].startswith(b"t OK")
    c.writer.write(b"this is not a ClientHello\r\n")
    async with asyncio.timeout(10):
        while await c.reader.read(4096):
            pass
    c.writer.close()


@pytest.mark.parametrize("mode", MODES)
async def test_imaplib_over_tls(imap: Imap, mode: str) -> None:
    message = _big_message(2 * 1024 * 1024)

    def client() -> None:
        m: imaplib.IMAP4
        if mode == "implicit":
            m = imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=imap.client_ssl,
                                  timeout=30)
        else:
            m = imaplib.IMAP4("127.0.0.1", imap.port, timeout=30)
            m.starttls(imap.client_ssl)
        m.login(imap.user, imap.password)
        assert m.append("INBOX", None, None, message)[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(data[0], tuple) and data[0][1] == message
        assert m.noop()[0] == "OK"
        m.logout()

    await asyncio.to_thread(client)


async def test_tls_connection_reports_its_tls_details(imap: Imap) -> None:
    """What the transport tells the stream layer and the server (get_extra_info)."""
    seen: dict[str, object] = {}
    original = imap.server._accept

    async def spy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                  tls: bool) -> None:
        if tls:
            for name in ("sslcontext", "ssl_object", "cipher", "peername", "socket"):
                seen[name] = writer.get_extra_info(name)
        await original(reader, writer, tls=tls)

    imap.server._accept = spy  # type: ignore[method-assign]
    c = await _connect(imap, "implicit")
    await c.close()
    assert isinstance(seen["sslcontext"], ssl.SSLContext)
    assert isinstance(seen["ssl_object"], ssl.SSLObject)
    assert seen["cipher"] is not None
    assert isinstance(seen["peername"], tuple) and seen["peername"][0] == "127.0.0.1"
    assert seen["socket"] is not None
