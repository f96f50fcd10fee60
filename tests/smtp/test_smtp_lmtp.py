"""LMTP (RFC 2033): LHLO, and one reply per accepted recipient after DATA; the Unix
socket listener (``smtp.lmtp_socket``)."""

from __future__ import annotations

import asyncio
import socket
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import SmtpConfig
from letterlock.errors import ConfigError
from letterlock.smtp import lmtp_socket
from letterlock.smtp.limits import LimitSettings, parse_networks
from letterlock.smtp.server import SmtpServer, lmtp_socket_of
from smtp.conftest import ALICE, BOB, World
from smtp.wire import Wire
from support.env import PASSWORD, make_config


async def test_one_reply_per_recipient(world: World) -> None:
    assert world.lmtp_port is not None
    wire = await Wire.open(world.lmtp_port)
    assert (await wire.cmd("EHLO t.test"))[0] == 500
    assert (await wire.cmd("LHLO mta.test"))[0] == 250
    assert (await wire.cmd("MAIL FROM:<x@remote.test>"))[0] == 250
    assert (await wire.cmd(f"RCPT TO:<{ALICE}>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<nobody@example.test>"))[0] == 550
    assert (await wire.cmd("RCPT TO:<someone@elsewhere.test>"))[0] == 550
    assert (await wire.cmd(f"RCPT TO:<{BOB}>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(b"Subject: lmtp\r\n\r\nbody\r\n.\r\n")
    first, second = await wire.reply(), await wire.reply()
    assert first[0] == 250 and ALICE in first[1]
    assert second[0] == 250 and BOB in second[1]
    assert (await wire.cmd("QUIT"))[0] == 221
    assert len(await world.inbox(ALICE)) == 1
    assert len(await world.inbox(BOB)) == 1


# -- the Unix socket (issue 17 point 4) ------------------------------------------------

BURST = 20
TIGHT = LimitSettings(commands_per_second=1.0, command_burst=BURST,
                      trusted_networks=parse_networks("127.0.0.1/32"))


async def _socket_server(app: App, path: Path, limits: LimitSettings) -> SmtpServer:
    server = SmtpServer(app.delivery, app.accounts, None,
                        SmtpConfig(port=0, submission_port=0), "mx.example.test", None,
                        lmtp=False, limits=limits, lmtp_socket=path)
    await server.start()
    return server


async def _open_socket(path: Path) -> Wire:
    reader, writer = await asyncio.open_unix_connection(str(path))
    wire = Wire(reader, writer)
    assert (await wire.reply())[0] == 220
    return wire


async def test_lmtp_socket_delivers_and_is_only_for_the_servers_group(
        accounts: App, tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    server = await _socket_server(accounts, path, TIGHT)
    try:
        assert server.ports is not None and server.ports.lmtp_socket == path
        assert stat.S_ISSOCK(path.stat().st_mode) and (path.stat().st_mode & 0o777) == 0o660
        wire = await _open_socket(path)
        assert (await wire.cmd("LHLO front.example.test"))[0] == 250
        assert (await wire.cmd("MAIL FROM:<x@remote.test>"))[0] == 250
        assert (await wire.cmd(f"RCPT TO:<{ALICE}>"))[0] == 250
        assert (await wire.cmd("DATA"))[0] == 354
        wire.send(b"Subject: over the socket\r\n\r\nbody\r\n.\r\n")
        assert (await wire.reply())[0] == 250
        assert (await wire.cmd("QUIT"))[0] == 221
    finally:
        await server.close()
    assert not path.exists()  # removed when the server closes
    session = await accounts.accounts.authenticate(ALICE, PASSWORD)
    inbox = await accounts.mailboxes.get_mailbox(session, "INBOX")
    [message] = await accounts.mailboxes.messages(session, inbox.id)
    stored = (await accounts.mailboxes.bodies(session, [message]))[message.uid]
    assert b"Received: from front.example.test\r\n\tby mx.example.test" in stored
    assert b"with LMTP id" in stored


@pytest.mark.parametrize("trusted", ["127.0.0.1/32", "10.0.0.0/8"])
async def test_lmtp_socket_peers_follow_the_trusted_network_rules_as_loopback(
        accounts: App, tmp_path: Path, trusted: str) -> None:
    # A process on the LMTP socket has no address: it is judged as loopback is, so a
    # front MTA there is not cut off by the command rate while loopback is trusted,
    # and is metered like anyone once the operator trusts only other networks.
    path = tmp_path / "lmtp.sock"
    server = await _socket_server(accounts, path, replace(
        TIGHT, trusted_networks=parse_networks(trusted)))
    try:
        wire = await _open_socket(path)
        assert (await wire.cmd("LHLO front.example.test"))[0] == 250
        replies = []
        while len(replies) < 2 * BURST and 421 not in replies:
            replies.append((await wire.cmd("NOOP"))[0])
        if trusted == "127.0.0.1/32":
            assert replies == [250] * (2 * BURST)
        else:
            assert replies == [250] * (BURST - 1) + [421]
    finally:
        await server.close()


async def test_stale_lmtp_socket_is_replaced_but_a_live_one_is_not(
        accounts: App, tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))  # as a server that died leaves it: nobody listens
    left.close()
    server = await _socket_server(accounts, path, TIGHT)
    try:
        with pytest.raises(ConfigError, match="another server is listening"):
            await _socket_server(accounts, path, TIGHT)
        assert path.exists()  # the running server's socket was left alone
        wire = await _open_socket(path)
        assert (await wire.cmd("QUIT"))[0] == 221
    finally:
        await server.close()
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="is not a socket"):
        await _socket_server(accounts, path, TIGHT)
    long = tmp_path / ("x" * 120) / "lmtp.sock"
    with pytest.raises(ConfigError, match="longer than a Unix socket path"):
        await _socket_server(accounts, long, TIGHT)


def test_lmtp_socket_option_is_under_home_unless_absolute(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert lmtp_socket_of(make_config(home)) == home / "lmtp.sock"
    assert lmtp_socket_of(make_config(home, LETTERLOCK_SMTP_LMTP_SOCKET="")) is None
    assert lmtp_socket_of(make_config(home, LETTERLOCK_SMTP_LMTP_SOCKET="/run/x.sock")) \
        == Path("/run/x.sock")
    deep = tmp_path / ("d" * 120)
    assert lmtp_socket_of(make_config(deep)) is None  # the default: skipped, with a warning
    with pytest.raises(ConfigError, match="longer than"):
        lmtp_socket.open_socket(deep / "lmtp.sock")
