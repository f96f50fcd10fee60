"""Issue 13 point 9: a client that fails the TLS handshake after STARTTLS (sends
garbage, closes mid-handshake, sends half a ClientHello or HTTP) costs at most one log
line and no traceback, on the MX and the submission listener; both serve on."""

from __future__ import annotations

import logging

import pytest

from smtp.conftest import World
from smtp.wire import Wire
from support.tls_failures import FAILURES, assert_quiet, fail_handshake


@pytest.mark.parametrize("how", FAILURES)
@pytest.mark.parametrize("listener", ["mx", "submission"])
async def test_smtp_failed_handshake_is_one_quiet_line(
        world: World, caplog: pytest.LogCaptureFixture, listener: str, how: str) -> None:
    caplog.set_level(logging.DEBUG)
    port = world.mx_port if listener == "mx" else world.submission_port
    wire = await Wire.open(port)
    assert (await wire.cmd("EHLO t.test"))[0] == 250
    assert (await wire.cmd("STARTTLS"))[0] == 220
    await fail_handshake(wire.writer, how)
    assert_quiet(caplog)
    again = await Wire.open(port)
    assert (await again.cmd("NOOP"))[0] == 250
    again.close()
