"""Issue 13 point 9: a number in a command (sequence number, UID, literal length,
MODSEQ, partial range, SEARCH LARGER...) with thousands of digits, or merely beyond the
32- or 63-bit range RFC 9051 and RFC 7162 give it, gets a tagged BAD; the connection
stays usable and the server logs no traceback. Python's ``int()`` refuses strings of
more than 4,300 digits with a ValueError, which the parser let through."""

from __future__ import annotations

import logging

import pytest
from imap_script import Imap, ScriptClient

from letterlock.imap.parsing import ParseError, parse_command
from letterlock.imap.parsing.commands import Fetch
from letterlock.imap.parsing.framing import OUT_OF_RANGE, trailing_literal
from letterlock.imap.parsing.primitives import SeqSet
from support.tracebacks import assert_no_traceback

HUGE = "9" * 5000
LEADING_ZEROS = "0" * 5000 + "1"
PAST_32 = str(2**32)
PAST_63 = str(2**63)

SELECTED_COMMANDS = [
    f"FETCH 1:{HUGE} FLAGS",
    f"FETCH {HUGE} FLAGS",
    f"UID FETCH {HUGE}:* FLAGS",
    f"FETCH 1 BODY[]<0.{HUGE}>",
    f"FETCH 1 BODY[]<{HUGE}.1>",
    f"FETCH 1 BODY[{HUGE}]",
    f"FETCH 1 FLAGS (CHANGEDSINCE {HUGE})",
    f"STORE 1 (UNCHANGEDSINCE {HUGE}) +FLAGS (\\Seen)",
    f"SEARCH LARGER {HUGE}",
    f"SEARCH MODSEQ {HUGE}",
    f"SEARCH UID {HUGE}",
    f"COPY {HUGE} INBOX",
    f"FETCH {PAST_32} FLAGS",
    f"UID FETCH 1:{PAST_32} FLAGS",
    f"FETCH 1 BODY[]<0.{PAST_32}>",
    f"FETCH 1 FLAGS (CHANGEDSINCE {PAST_63})",
    f"SEARCH MODSEQ {PAST_63}",
    f"FETCH {LEADING_ZEROS}{HUGE} FLAGS",
]


async def _with_one_message(imap: Imap) -> ScriptClient:
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, "INBOX", b"Subject: one\r\n\r\nbody\r\n")
    return await imap.session("INBOX")


async def _usable(client: ScriptClient) -> None:
    lines = await client.command("N", "NOOP")
    assert lines[-1].startswith(b"N OK"), lines


@pytest.mark.parametrize("command", SELECTED_COMMANDS,
                         ids=lambda text: text[:40].replace(HUGE[:30], "HUGE"))
async def test_huge_number_is_a_bad_command(imap: Imap, caplog: pytest.LogCaptureFixture,
                                            command: str) -> None:
    caplog.set_level(logging.DEBUG)
    client = await _with_one_message(imap)
    lines = await client.command("T", command)
    assert lines[-1].startswith(b"T BAD"), lines[-1][:200]
    assert len(lines[-1]) < 300  # the number is not echoed back
    await _usable(client)
    await client.close()
    assert_no_traceback(caplog)


async def test_number_with_leading_zeros_is_its_value(imap: Imap) -> None:
    client = await _with_one_message(imap)
    lines = await client.command("T", f"FETCH {LEADING_ZEROS} FLAGS")
    assert lines[-1].startswith(b"T OK"), lines[-1][:200]
    assert lines[0].startswith(b"* 1 FETCH"), lines[0]
    await client.close()


@pytest.mark.parametrize("size", [HUGE, "1" + "0" * 25, PAST_63])
@pytest.mark.parametrize("form", ["{%s}", "~{%s}"])
async def test_huge_literal_length_is_refused(imap: Imap, caplog: pytest.LogCaptureFixture,
                                              size: str, form: str) -> None:
    caplog.set_level(logging.DEBUG)
    client = await imap.session()
    lines = await client.command("T", "APPEND INBOX " + form % size)
    assert lines[-1].startswith((b"T BAD", b"T NO")), lines[-1][:200]
    assert len(lines[-1]) < 300
    await _usable(client)
    await client.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("size", [HUGE, "1" + "0" * 25, PAST_63])
async def test_huge_non_synchronizing_literal_ends_the_connection(
        imap: Imap, caplog: pytest.LogCaptureFixture, size: str) -> None:
    """No literal is longer than number64: the server cannot skip it, and must not run
    the literal data that follows as commands (RFC 7888 LITERAL+), so it says BAD and
    BYE and closes."""
    caplog.set_level(logging.DEBUG)
    client = await imap.session()
    client.send(b"T APPEND INBOX {%s+}\r\nX NOOP\r\n" % size.encode())
    lines = [await client.response(), await client.response()]
    assert lines[0].startswith(b"T BAD") and len(lines[0]) < 300, lines[0][:200]
    assert lines[1].startswith(b"* BYE"), lines[1]
    assert await client.reader.read() == b""  # closed; X NOOP never ran
    await client.close()
    assert_no_traceback(caplog)


async def test_huge_literal_length_before_login(imap: Imap,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = await ScriptClient.connect(imap.port)
    lines = await client.command("T", "LOGIN {" + HUGE + "}")
    assert lines[-1].startswith((b"T BAD", b"T NO")), lines[-1][:200]
    await client.login(imap.user, imap.password)
    await _usable(client)
    await client.close()
    assert_no_traceback(caplog)


async def test_huge_qresync_numbers(imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = await imap.session()
    assert (await client.command("E", "ENABLE QRESYNC"))[-1].startswith(b"E OK")
    for args in [f"({HUGE} 1)", f"(1 {HUGE})", f"(1 1 1:{HUGE})", f"({PAST_32} 1)",
                 f"(1 {PAST_63})"]:
        lines = await client.command("T", f"SELECT INBOX (QRESYNC {args})")
        assert lines[-1].startswith(b"T BAD"), lines[-1][:200]
        await _usable(client)
    await client.close()
    assert_no_traceback(caplog)


# -- the pure parsers -------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    b"a FETCH " + HUGE.encode() + b" FLAGS",
    b"a FETCH 1 BODY[]<0." + HUGE.encode() + b">",
    b"a SEARCH MODSEQ " + PAST_63.encode(),
    b"a FETCH " + PAST_32.encode() + b" FLAGS",
    b"a LOGIN {" + HUGE.encode() + b"}\r\nx y",
])
def test_parser_refuses_out_of_range_numbers(line: bytes) -> None:
    with pytest.raises(ParseError, match="out of range") as raised:
        parse_command(line)
    assert len(raised.value.message) < 100


def test_parser_reads_leading_zeros() -> None:
    command = parse_command(b"a FETCH " + LEADING_ZEROS.encode() + b" FLAGS")
    assert isinstance(command, Fetch) and command.set == SeqSet(((1, 1),))


@pytest.mark.parametrize(("digits", "size"), [
    (b"12", 12), (b"0" * 5000 + b"7", 7), (PAST_63.encode(), OUT_OF_RANGE),
    (HUGE.encode(), OUT_OF_RANGE), (str(2**63 - 1).encode(), 2**63 - 1)])
def test_literal_framing_of_long_sizes(digits: bytes, size: int) -> None:
    announced = trailing_literal(b"a APPEND x {" + digits + b"+}\r\n")
    assert announced is not None and announced.size == size
