"""The MX listener with Python's smtplib: acceptance, refusals, limits, residency."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from letterlock.crypto.seal import SealHeader
from smtp.conftest import ALICE, BOB, World


def _send(port: int, sender: str, rcpts: list[str], msg: bytes) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(sender, rcpts, msg)


MESSAGE = (b"From: someone@remote.test\r\nTo: alice@example.test\r\n"
           b"Subject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\nHi there.\r\n")


async def test_ehlo_advertises_extensions(world: World) -> None:
    def ehlo() -> tuple[int, str]:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
            code, text = client.ehlo("client.remote.test")
            return code, text.decode()

    code, text = await asyncio.to_thread(ehlo)
    assert code == 250
    features = {line.split()[0] for line in text.splitlines()[1:]}
    assert {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
            "STARTTLS"} <= features
    assert "AUTH" not in features


async def test_message_lands_sealed_with_received_header(world: World) -> None:
    refused = await asyncio.to_thread(_send, world.mx_port, "someone@remote.test", [ALICE],
                                      MESSAGE)
    assert refused == {}
    [stored] = await world.inbox(ALICE)
    assert stored.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from ")
    assert b"by mx.example.test (letterlock)" in stored
    assert stored.endswith(MESSAGE)


async def test_two_regions_each_sealed_to_its_own_key(world: World) -> None:
    refused = await asyncio.to_thread(_send, world.mx_port, "someone@remote.test",
                                      [ALICE, BOB], MESSAGE)
    assert refused == {}
    for address, region in ((ALICE, "us-east"), (BOB, "eu-dublin")):
        [stored] = await world.inbox(address)
        assert stored.endswith(MESSAGE)
        ref = await world.app.accounts.resolve(address)
        assert ref.region == region
        cell = world.app.cells.get(region)
        ids = await cell.blobs.list_ids()
        assert len(ids) == 1
        blob = await cell.blobs.get(ids[0])
        assert SealHeader.parse(blob).key_id == ref.record.key_id
        assert b"Hi there" not in blob


async def test_unknown_user_is_550_511(world: World) -> None:
    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
            client.ehlo()
            client.mail("someone@remote.test")
            return client.rcpt("nobody@example.test")

    code, text = await asyncio.to_thread(run)
    assert (code, text[:5]) == (550, b"5.1.1")


async def test_foreign_domain_is_not_relayed(world: World) -> None:
    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
            client.ehlo()
            client.mail("someone@remote.test")
            return client.rcpt("victim@elsewhere.test")

    code, text = await asyncio.to_thread(run)
    assert (code, text[:5]) == (550, b"5.7.1")


async def test_declared_size_over_limit_is_552(world: World) -> None:
    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
            client.ehlo()
            return client.mail("someone@remote.test", ["SIZE=999999999"])

    code, _ = await asyncio.to_thread(run)
    assert code == 552


async def test_actual_size_over_limit_is_552_and_nothing_stored(world: World) -> None:
    big = MESSAGE + b"x" * 70 + b"\r\n"
    big = big * (400 * 1024 // len(big))

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=30) as client:
            client.ehlo()
            client.mail("someone@remote.test")
            client.rcpt(ALICE)
            code, text = client.data(big)
            # The session is still usable afterwards.
            assert client.noop()[0] == 250
            return code, text

    code, text = await asyncio.to_thread(run)
    assert (code, text[:5]) == (552, b"5.3.4")
    assert await world.inbox(ALICE) == []


async def test_null_sender_bounce_is_accepted(world: World) -> None:
    refused = await asyncio.to_thread(_send, world.mx_port, "", [ALICE], MESSAGE)
    assert refused == {}
    [stored] = await world.inbox(ALICE)
    assert stored.startswith(b"Return-Path: <>\r\n")


async def test_dot_stuffing_round_trips(world: World) -> None:
    body = b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n"
    await asyncio.to_thread(_send, world.mx_port, "a@remote.test", [ALICE], body)
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(body)


@pytest.mark.parametrize("pipelined", [True])
async def test_pipelined_client(world: World, pipelined: bool) -> None:
    """A client sending MAIL, RCPT, RCPT, DATA in one write gets every reply in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", world.mx_port)
    assert (await reader.readline()).startswith(b"220 ")
    writer.write(b"EHLO pipe.test\r\n")
    while not (await reader.readline()).startswith(b"250 "):
        pass
    writer.write(b"MAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    codes = [(await reader.readline())[:3] for _ in range(5)]
    assert codes == [b"250", b"250", b"550", b"250", b"354"]
    writer.write(b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<q@remote.test>\r\n"
                 b"RSET\r\nQUIT\r\n")
    rest = [(await reader.readline())[:3] for _ in range(4)]
    assert rest == [b"250", b"250", b"250", b"221"]
    writer.close()
    assert len(await world.inbox(ALICE)) == 1
    assert len(await world.inbox(BOB)) == 1
