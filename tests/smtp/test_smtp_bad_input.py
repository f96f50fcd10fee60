"""Hostile and broken clients: every case gets the right reply or a safely stored
message, never a crash or a hang (and the server keeps serving afterwards)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.smtp.limits import LimitSettings
from smtp.conftest import ALICE, BOB, World, start_world
from smtp.wire import Wire
from support.env import PASSWORD


async def _open_txn(world: World, rcpt: str = ALICE) -> Wire:
    wire = await Wire.open(world.mx_port)
    assert (await wire.cmd("EHLO evil.test"))[0] == 250
    assert (await wire.cmd("MAIL FROM:<x@remote.test>"))[0] == 250
    assert (await wire.cmd(f"RCPT TO:<{rcpt}>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    return wire


async def _still_serving(world: World) -> None:
    wire = await Wire.open(world.mx_port)
    assert (await wire.cmd("NOOP"))[0] == 250
    wire.close()


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
async def test_smtp_smuggling_sequence_does_not_end_data(world: World, smuggle: bytes) -> None:
    wire = await _open_txn(world)
    wire.send(b"Subject: first\r\n\r\nhello" + smuggle
              + b"MAIL FROM:<spoof@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
              + b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
    code, _ = await wire.reply()
    assert code == 250
    assert (await wire.cmd("QUIT"))[0] == 221
    [stored] = await world.inbox(ALICE)
    assert b"Subject: smuggled" in stored  # kept as content of the one message
    assert await world.inbox(BOB) == []
    # Stored with canonical line ends: a later hop cannot reinterpret it.
    body = stored.split(b"\r\n\r\n", 1)[1]
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b"\r" not in body.replace(b"\r\n", b"")


async def test_bare_lf_message_is_stored_with_crlf(world: World) -> None:
    wire = await _open_txn(world)
    wire.send(b"Subject: lf\nX-Test: yes\n\nline one\nline two\r\n.\r\n")
    assert (await wire.reply())[0] == 250
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(b"Subject: lf\r\nX-Test: yes\r\n\r\nline one\r\nline two\r\n")


async def test_oversized_line_in_data_is_stored_intact(world: World) -> None:
    wire = await _open_txn(world)
    long_line = b"y" * 150_000
    wire.send(b"Subject: long\r\n\r\n" + long_line + b"\r\n.\r\n")
    assert (await wire.reply())[0] == 250
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(b"\r\n\r\n" + long_line + b"\r\n")


async def test_oversized_command_line_is_refused_and_session_survives(world: World) -> None:
    wire = await Wire.open(world.mx_port)
    code, text = await wire.cmd(b"EHLO " + b"a" * 200_000 + b"\r\n")
    assert code == 500 and text.startswith("5.5.")
    assert (await wire.cmd("EHLO ok.test"))[0] == 250
    wire.close()


async def test_eight_bit_and_non_utf8_headers_are_stored_verbatim(world: World) -> None:
    wire = await _open_txn(world)
    header = b"Subject: caf\xe9 \xff\xfe na\xc3\xafve\r\nFrom: \x80\x81 <x@remote.test>\r\n"
    wire.send(header + b"\r\nbody \xe9\r\n.\r\n")
    assert (await wire.reply())[0] == 250
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(header + b"\r\nbody \xe9\r\n")


@pytest.mark.parametrize(("command", "code"), [
    (b"MAIL FROM:<a b@remote.test>", 553),
    (b"MAIL FROM:<x@remote.test", 501),
    (b"MAIL FROM:x@remote.test junk=", 501),
    (b"MAIL FROM:<\xff\xfe@remote.test>", 553),
    (b"MAIL FROM:<x@remote.test> FOO=BAR", 555),
    (b"MAIL FROM:<x@remote.test> BODY=9BIT", 501),
    (b"MAIL TO:<x@remote.test>", 501),
    (b"MAIL", 501),
])
async def test_invalid_mail_from(world: World, command: bytes, code: int) -> None:
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    got, text = await wire.cmd(command + b"\r\n")
    assert got == code, text
    assert text[:2] == f"{code // 100}."  # enhanced status code present
    assert (await wire.cmd("NOOP"))[0] == 250
    wire.close()


@pytest.mark.parametrize(("address", "code"), [
    (b"<>", 501),
    (b"<@@>", 553),
    (b"<alice@exa mple.test>", 553),
    (b"<alice@example.test", 501),
    (b"<alice@@example.test>", 553),
    (b"<\xc3\xa5lice@example.test>", 550),  # valid UTF-8, no such user
    (b"<" + b"a" * 300 + b"@example.test>", 553),
    (b"<@relay.test:alice@example.test>", 250),  # source route ignored
])
async def test_invalid_rcpt_to(world: World, address: bytes, code: int) -> None:
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    await wire.cmd("MAIL FROM:<x@remote.test>")
    got, text = await wire.cmd(b"RCPT TO:" + address + b"\r\n")
    assert got == code, text
    wire.close()


@pytest.mark.parametrize(("command", "code"), [
    (b"FOO bar", 500),
    (b"", 500),
    (b"\x00\x01\x02", 500),
    (b"\xff\xfe", 500),
    (b"RCPT TO:<alice@example.test>", 503),
    (b"DATA", 503),
    (b"AUTH PLAIN AGFsaWNlAHNlY3JldA==", 502),
    (b"STARTTLS extra", 501),
    (b"HELO", 501),
])
async def test_malformed_commands(world: World, command: bytes, code: int) -> None:
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    got, _ = await wire.cmd(command + b"\r\n")
    assert got // 100 == code // 100
    assert (await wire.cmd("NOOP"))[0] == 250
    wire.close()


async def test_truncated_data_stores_nothing(world: World) -> None:
    wire = await _open_txn(world)
    wire.send(b"Subject: cut\r\n\r\nhalf a mess")
    await wire.writer.drain()
    wire.close()
    await _still_serving(world)
    assert await world.inbox(ALICE) == []


async def test_data_without_recipients_and_nested_mail(world: World) -> None:
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    assert (await wire.cmd("MAIL FROM:<x@remote.test>"))[0] == 250
    assert (await wire.cmd("MAIL FROM:<x@remote.test>"))[0] == 503
    assert (await wire.cmd("DATA"))[0] == 503
    assert (await wire.cmd("RSET"))[0] == 250
    assert (await wire.cmd("RCPT TO:<alice@example.test>"))[0] == 503
    wire.close()


async def test_connection_limit_per_address(accounts: App, tmp_path: Path) -> None:
    world = await start_world(accounts, tmp_path,
                              limits=LimitSettings(max_connections_per_ip=2))
    try:
        first, second = await Wire.open(world.mx_port), await Wire.open(world.mx_port)
        third = await Wire.open(world.mx_port, greet=False)
        code, text = await third.reply()
        assert (code, text[:5]) == (421, "4.7.0")
        assert await third.closed()
        first.close()
        await first.writer.wait_closed()
        await _wait_for(lambda: world.server._limits.connections("127.0.0.1") < 2)
        fourth = await Wire.open(world.mx_port)
        assert (await fourth.cmd("NOOP"))[0] == 250
        for w in (second, fourth):
            w.close()
    finally:
        await world.server.close()


async def test_error_limit_closes_the_session(accounts: App, tmp_path: Path) -> None:
    world = await start_world(accounts, tmp_path, limits=LimitSettings(
        max_errors_per_session=5, max_errors_per_window=8))
    try:
        wire = await Wire.open(world.mx_port)
        await wire.cmd("EHLO t.test")
        for _ in range(4):
            assert (await wire.cmd("RCPT TO:<a@b.test>"))[0] == 503
        wire.send(b"BOGUS\r\n")
        assert (await wire.reply())[0] == 500
        assert (await wire.reply())[0] == 421
        assert await wire.closed()
        # The address has now used most of its error budget: a few more and it is
        # refused at connect time.
        wire = await Wire.open(world.mx_port)
        for _ in range(3):
            await wire.cmd("BOGUS")
        refused = await Wire.open(world.mx_port, greet=False)
        assert (await refused.reply())[0] == 421
    finally:
        await world.server.close()


async def test_idle_client_is_disconnected(accounts: App, tmp_path: Path) -> None:
    world = await start_world(accounts, tmp_path, limits=LimitSettings(timeout_s=0.5))
    try:
        wire = await Wire.open(world.mx_port)
        assert await wire.closed(timeout=5)
        # ... also in the middle of DATA
        wire = await _open_txn(world)
        wire.send(b"Subject: slow\r\n")
        assert await wire.closed(timeout=5)
        assert await world.inbox(ALICE) == []
    finally:
        await world.server.close()


async def _wait_for(pred: object, timeout: float = 5) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_command_rate_limit_per_address(accounts: App, tmp_path: Path) -> None:
    world = await start_world(accounts, tmp_path, limits=LimitSettings(
        commands_per_second=1.0, command_burst=5))
    try:
        wire = await Wire.open(world.mx_port)
        for _ in range(5):
            assert (await wire.cmd("NOOP"))[0] == 250
        code, text = await wire.cmd("NOOP")
        assert (code, text[:5]) == (421, "4.7.0")
        assert await wire.closed()
    finally:
        await world.server.close()


async def test_end_of_data_split_across_packets(world: World) -> None:
    wire = await _open_txn(world)
    for piece in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
        wire.send(piece)
        await wire.writer.drain()
        await asyncio.sleep(0.02)
    assert (await wire.reply())[0] == 250
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(b"\r\n\r\nbody\r\n")


async def test_commands_injected_before_tls_are_discarded(world: World) -> None:
    """CVE-2011-0411 style: plaintext commands sent along with STARTTLS must not be
    executed inside the TLS session."""
    wire = await Wire.open(world.mx_port)
    await wire.cmd("EHLO t.test")
    wire.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n")
    assert (await wire.reply())[0] == 220
    await wire.writer.start_tls(world.client_tls)
    # Had the injected MAIL run inside TLS, its "Sender OK" would come first.
    assert await wire.cmd("NOOP") == (250, "2.0.0 OK")
    assert (await wire.cmd("EHLO t.test"))[0] == 250
    assert (await wire.cmd("MAIL FROM:<real@remote.test>"))[0] == 250
    wire.close()


async def test_an_address_out_of_error_budget_can_still_submit(accounts: App,
                                                              tmp_path: Path) -> None:
    """Issue 13 point 5: 100 errors in 60 s from an address must not lock it out of
    authenticated submission (an office behind NAT with one broken program). The MX
    refuses it; submission, where users authenticate, and LMTP from a trusted peer
    still take it."""
    world = await start_world(accounts, tmp_path, limits=LimitSettings(
        max_errors_per_session=1000, max_errors_per_window=100))
    try:
        wire = await Wire.open(world.mx_port)
        await wire.cmd("EHLO t.test")
        for _ in range(100):
            assert (await wire.cmd("RCPT TO:<a@b.test>"))[0] == 503
        wire.close()
        refused = await Wire.open(world.mx_port, greet=False)
        assert (await refused.reply())[0] == 421
        assert world.lmtp_port is not None
        lmtp = await Wire.open(world.lmtp_port)
        assert (await lmtp.cmd("LHLO front.test"))[0] == 250
        lmtp.close()

        sub = await Wire.open(world.submission_port)
        assert (await sub.cmd("EHLO laptop.test"))[0] == 250
        assert (await sub.cmd("STARTTLS"))[0] == 220
        await sub.writer.start_tls(world.client_tls)
        sub = Wire(sub.reader, sub.writer)
        assert (await sub.cmd("EHLO laptop.test"))[0] == 250
        token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        assert (await sub.cmd(f"AUTH PLAIN {token}"))[0] == 235
        assert (await sub.cmd(f"MAIL FROM:<{ALICE}>"))[0] == 250
        assert (await sub.cmd(f"RCPT TO:<{BOB}>"))[0] == 250
        assert (await sub.cmd("QUIT"))[0] == 221
    finally:
        await world.server.close()
