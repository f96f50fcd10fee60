"""A filter's redirect through the real outbound queue (issue 16 point 3): mail for
alice over MX is redirected by her script and reaches carol on a second letterlock
instance, keeping the original envelope sender and carrying the loop guard."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from test_smtp_outbound import make_queue, other

from letterlock.app import App
from letterlock.services.mail import dkim_keys
from smtp.conftest import ALICE, World, start_world
from support.env import PASSWORD

__all__ = ["other"]


def send(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("erin@remote.test", [ALICE],
                               b"From: <erin@remote.test>\r\nSubject: for carol\r\n\r\n"
                               b"Please pass this on, redirect-marker-7\r\n")


async def test_redirect_reaches_another_server(accounts: App, other: World,
                                               tmp_path: Path) -> None:
    queue = make_queue(accounts, port=other.mx_port)
    await queue.start()
    world = await start_world(accounts, tmp_path, outbound=queue)
    assert accounts.delivery.filters is not None
    accounts.delivery.filters.attach_outbound(queue)
    try:
        session = await accounts.accounts.authenticate(ALICE, PASSWORD)
        await accounts.filters.put(session, "fwd", 'redirect "carol@other.test";\r\n',
                                   via="test")
        await accounts.filters.activate(session, "fwd", via="test")
        assert await asyncio.to_thread(send, world.mx_port) == {}
        await queue.wait_until(lambda entries: not entries)
        [received] = await other.inbox("carol@other.test")
        assert b"redirect-marker-7" in received
        assert b"X-Letterlock-Sieve-Redirected: " + ALICE.encode() in received
        assert received.startswith(b"Return-Path: <erin@remote.test>")
        assert await world.inbox(ALICE) == []
    finally:
        await world.server.close()
        await queue.close()


def send_from_carol(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("carol@other.test", [ALICE],
                               f"From: <carol@other.test>\r\nTo: <{ALICE}>\r\n"
                               "Subject: are you in?\r\nMessage-ID: <c1@other.test>\r\n\r\n"
                               "Hello\r\n".encode())


async def test_vacation_reply_is_signed_for_the_account_domain(
        accounts: App, other: World, tmp_path: Path) -> None:
    dkim_keys.create_key(accounts.config.control_dir, "example.test", selector="test1024",
                         bits=1024)
    queue = make_queue(accounts, port=other.mx_port)
    await queue.start()
    world = await start_world(accounts, tmp_path, outbound=queue)
    assert accounts.delivery.filters is not None
    accounts.delivery.filters.attach_outbound(queue)
    try:
        session = await accounts.accounts.authenticate(ALICE, PASSWORD)
        await accounts.filters.put(session, "away", 'require "vacation";\r\n'
                                   'vacation "Back on Monday.";\r\n', via="test")
        await accounts.filters.activate(session, "away", via="test")
        assert await asyncio.to_thread(send_from_carol, world.mx_port) == {}
        await queue.wait_until(lambda entries: not entries)
        [reply] = await other.inbox("carol@other.test")
        assert reply.startswith(b"Return-Path: <>")
        assert b"d=example.test" in reply.split(b"DKIM-Signature:", 1)[1][:400]
        assert b"Subject: Auto: are you in?" in reply and b"Back on Monday." in reply
        assert len(await world.inbox(ALICE)) == 1
    finally:
        await world.server.close()
        await queue.close()
