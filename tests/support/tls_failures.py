"""Ways a client fails the TLS handshake after STARTTLS, and the check that it cost the
server at most one log line and no traceback (issue 13 point 9)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import pytest

from support.tracebacks import assert_no_traceback

FAILURES = ["garbage", "close", "half-hello", "http"]


def _half_client_hello() -> bytes:
    """The first bytes a real TLS client sends, cut short."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing,
                                                   server_hostname="x.test")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server
        client.do_handshake()
    return outgoing.read()[:40]


async def fail_handshake(writer: asyncio.StreamWriter, how: str) -> None:
    """Fail the handshake the way ``how`` (one of FAILURES) says, then hang up."""
    if how == "garbage":
        writer.write(b"\x00\xffthis is not TLS at all\r\n" * 20)
    elif how == "half-hello":
        writer.write(_half_client_hello())
    elif how == "http":
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)  # let the server notice


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback, at most one line at WARNING or above, and at most one line about
    the handshake at any level (the session's usual disconnect lines aside)."""
    assert_no_traceback(caplog)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1, [r.getMessage() for r in loud]
    about = [r.getMessage() for r in caplog.records
             if any(word in r.getMessage() for word in ("TLS", "SSL", "handshake"))]
    assert len(about) <= 1, about
