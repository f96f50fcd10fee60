"""Trusted networks (issue 11 point 5): a front MTA on a trusted network delivering
over LMTP at full speed, and an authenticated submission session, are not cut off by
the per-address command rate ("421 4.7.0 Too many commands"); an untrusted peer
still is, and the MX listener always is.

The untrusted peer is played by a client bound to 127.0.0.2 with only 127.0.0.1/32
trusted. The command budget is tiny (20 commands, then 1 a second), so anything
metered is refused long before the 10,000 messages are through."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.errors import ConfigError
from letterlock.smtp.limits import LimitSettings, in_networks, parse_networks
from smtp.conftest import ALICE, World, start_world
from smtp.wire import Wire
from support.env import PASSWORD, make_config

MESSAGES = 10_000
TIGHT = LimitSettings(commands_per_second=1.0, command_burst=20,
                      trusted_networks=parse_networks("127.0.0.1/32"))


@pytest.fixture
def config(home: Path) -> config_mod.Config:
    # Ten thousand deliveries: durability is tested elsewhere.
    return make_config(home, LETTERLOCK_STORAGE_FSYNC="0")


@pytest.fixture
async def tight(accounts: App, tmp_path: Path) -> AsyncIterator[World]:
    world = await start_world(accounts, tmp_path, limits=TIGHT)
    try:
        yield world
    finally:
        await world.server.close()


async def _open(port: int, source: str) -> Wire:
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=(source, 0))
    wire = Wire(reader, writer)
    assert (await wire.reply())[0] == 220
    return wire


async def _refused_after_the_burst(wire: Wire) -> None:
    """The session's greeting (EHLO/LHLO) and then NOOPs spend the burst."""
    for _ in range(TIGHT.command_burst - 1):
        assert (await wire.cmd("NOOP"))[0] == 250
    code, text = await wire.cmd("NOOP")
    assert (code, text[:5]) == (421, "4.7.0")
    assert await wire.closed()


async def test_front_mta_on_a_trusted_network_delivers_at_full_speed(tight: World) -> None:
    assert tight.lmtp_port is not None
    wire = await _open(tight.lmtp_port, "127.0.0.1")
    assert (await wire.cmd("LHLO front.example.test"))[0] == 250
    envelope = f"MAIL FROM:<list@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode()
    for n in range(MESSAGES):
        wire.send(envelope)  # PIPELINING (RFC 2920), as Postfix's lmtp client does
        assert [(await wire.reply())[0] for _ in range(3)] == [250, 250, 354], n
        wire.send(b"Subject: %d\r\n\r\nmessage %d\r\n.\r\n" % (n, n))
        assert (await wire.reply())[0] == 250, n
    assert (await wire.cmd("QUIT"))[0] == 221
    session = await tight.app.accounts.authenticate(ALICE, PASSWORD)
    inbox = await tight.app.mailboxes.get_mailbox(session, "INBOX")
    assert inbox.messages == MESSAGES


async def test_an_untrusted_peer_is_still_metered(tight: World) -> None:
    assert tight.lmtp_port is not None
    wire = await _open(tight.lmtp_port, "127.0.0.2")
    assert (await wire.cmd("LHLO elsewhere.test"))[0] == 250
    await _refused_after_the_burst(wire)


async def test_mx_is_metered_even_from_a_trusted_network(tight: World) -> None:
    wire = await _open(tight.mx_port, "127.0.0.1")
    assert (await wire.cmd("EHLO mta.example.test"))[0] == 250
    await _refused_after_the_burst(wire)


async def test_an_authenticated_submission_session_is_not_metered(tight: World) -> None:
    """From an untrusted address: metered until AUTH succeeds, then not."""
    wire = await _open(tight.submission_port, "127.0.0.2")
    await wire.cmd("EHLO client.test")
    assert (await wire.cmd("STARTTLS"))[0] == 220
    reader, writer = wire.reader, wire.writer
    await writer.start_tls(tight.client_tls)
    wire = Wire(reader, writer)
    assert (await wire.cmd("EHLO client.test"))[0] == 250
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert (await wire.cmd(f"AUTH PLAIN {token}"))[0] == 235
    for _ in range(3 * TIGHT.command_burst):
        assert (await wire.cmd("NOOP"))[0] == 250
    assert (await wire.cmd("QUIT"))[0] == 221


async def test_an_unauthenticated_submission_session_from_elsewhere_is_metered(
        tight: World) -> None:
    wire = await _open(tight.submission_port, "127.0.0.2")
    assert (await wire.cmd("EHLO client.test"))[0] == 250
    await _refused_after_the_burst(wire)


def test_trusted_networks_option() -> None:
    default = parse_networks(config_mod.SmtpConfig().trusted_networks)
    assert in_networks("127.0.0.1", default) and in_networks("127.3.4.5", default)
    assert in_networks("::1", default) and in_networks("::ffff:127.0.0.1", default)
    assert not in_networks("192.0.2.1", default) and not in_networks("", default)
    mixed = parse_networks(" 10.0.0.0/8 ,2001:db8::/32,192.0.2.7,, ")
    assert in_networks("10.200.0.1", mixed) and in_networks("2001:db8::25", mixed)
    assert in_networks("192.0.2.7", mixed) and not in_networks("192.0.2.8", mixed)
    assert parse_networks("") == ()
    with pytest.raises(ConfigError, match="not-a-network"):
        parse_networks("10.0.0.0/8, not-a-network")

