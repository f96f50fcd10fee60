"""Issue 13 point 9: a client that fails the TLS handshake after STARTTLS (sends
garbage, closes mid-handshake, sends half a ClientHello or HTTP) costs at most one log
line and no traceback; the server serves on."""

from __future__ import annotations

import logging

import pytest
from imap_script import Imap, ScriptClient

from support.tls_failures import FAILURES, assert_quiet, fail_handshake


@pytest.mark.parametrize("how", FAILURES)
async def test_imap_failed_handshake_is_one_quiet_line(
        imap: Imap, caplog: pytest.LogCaptureFixture, how: str) -> None:
    caplog.set_level(logging.DEBUG)
    client = await ScriptClient.connect(imap.port)
    lines = await client.command("S", "STARTTLS")
    assert lines[-1].startswith(b"S OK"), lines
    await fail_handshake(client.writer, how)
    assert_quiet(caplog)
    again = await ScriptClient.connect(imap.port)
    assert (await again.command("N", "NOOP"))[-1].startswith(b"N OK")
    await again.close()
