"""LMTP (RFC 2033): LHLO, and one reply per accepted recipient after DATA."""

from __future__ import annotations

from smtp.conftest import ALICE, BOB, World
from smtp.wire import Wire


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
