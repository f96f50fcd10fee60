"""Issue 13 point 9: a command argument that is not UTF-8, or that carries CR, NUL or
other control octets, gets a 5xx reply that does not echo it, no traceback in the
server's log, and the session goes on."""

from __future__ import annotations

import logging

import pytest

from smtp.conftest import World
from smtp.wire import Wire
from support.tracebacks import assert_no_traceback

HOSTILE = [b"\xff\xfe", b"\xc3", b"@@\xff", b"@@a\rb", b"<\xff@example.test>", b"a\rb",
           b"alice\x00@example.test", b"<alice@example.test>\x00\x07"]
"""Not UTF-8, or with control octets; ``@@`` made aiosmtpd's VRFY echo the argument."""


async def _raw_reply(wire: Wire) -> bytes:
    line = await wire.reader.readline()
    assert line.endswith(b"\r\n")
    return line


@pytest.mark.parametrize("verb", [b"VRFY", b"EXPN", b"HELP", b"NOOP"])
@pytest.mark.parametrize("argument", HOSTILE)
async def test_hostile_argument_gets_a_clean_reply(
        world: World, caplog: pytest.LogCaptureFixture, verb: bytes, argument: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    for port in (world.mx_port, world.submission_port):
        wire = await Wire.open(port)
        assert (await wire.cmd("EHLO t.test"))[0] == 250
        wire.send(verb + b" " + argument + b"\r\n")
        line = await _raw_reply(wire)
        code = int(line[:3])
        assert code in (250, 252) or 500 <= code < 600, line
        body = line[:-2]
        assert all(0x20 <= octet < 0x7f for octet in body), line  # nothing raw echoed
        assert (await wire.cmd("NOOP"))[0] == 250  # the session goes on
        wire.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("argument", HOSTILE)
async def test_vrfy_of_hostile_argument_is_a_syntax_error(
        world: World, caplog: pytest.LogCaptureFixture, argument: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    code, text = await wire.cmd(b"VRFY " + argument + b"\r\n")
    assert code == 501 and text.startswith("5.5."), text
    assert (await wire.cmd("VRFY <alice@example.test>"))[0] == 252
    wire.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("command", [b"\x00\x01\x02", b"FO\rO bar", b"X\x1b[2J", b"\x7f"])
async def test_unknown_command_with_control_octets_is_not_echoed(
        world: World, caplog: pytest.LogCaptureFixture, command: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    wire.send(command + b"\r\n")
    line = await _raw_reply(wire)
    assert line[:3] == b"500"
    assert all(0x20 <= octet < 0x7f for octet in line[:-2]), line
    assert (await wire.cmd("NOOP"))[0] == 250
    wire.close()
    assert_no_traceback(caplog)
