"""Queued mail for hosted addresses is delivered here (services/mail/local_handoff.py):
a Sieve vacation reply to a local sender reaches that sender's INBOX through the real
outbound queue, without a DNS lookup of a hosted domain; an unknown local user is a
5.1.1 bounce; foreign addresses in the same message are still routed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from letterlock.app import App
from smtp.conftest import ALICE, BOB, start_world
from smtp.test_smtp_filters import use_script
from smtp.test_smtp_outbound import make_queue, submit


async def test_vacation_reply_to_a_local_sender_is_delivered_here(
        accounts: App, tmp_path: Path) -> None:
    looked_up: list[str] = []

    async def lookup(domain: str) -> list[str]:
        looked_up.append(domain)
        return ["127.0.0.1"]

    queue = make_queue(accounts, mx_lookup=lookup)
    assert accounts.delivery.filters is not None
    accounts.delivery.filters.attach_outbound(queue)
    await queue.start()
    world = await start_world(accounts, tmp_path, outbound=queue)
    try:
        await use_script(world, 'require "vacation";\r\n'
                         'vacation :days 7 "Back on Monday.";\r\n', account=BOB)
        # Alice (us-east) writes to Bob (eu-dublin) over submission: Bob's filter
        # answers through the queue, and the answer is Alice's to read.
        message = (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: lunch?\r\n"
                   "Message-ID: <lunch@example.test>\r\n\r\nFriday?\r\n").encode()
        assert await asyncio.to_thread(submit, world, [BOB], message) == {}
        await queue.wait_until(lambda entries: not entries)
        replies = [m for m in await world.inbox(ALICE) if b"Back on Monday." in m]
        assert len(replies) == 1
        assert b"Auto-Submitted: auto-replied" in replies[0]
        assert b"Return-Path: <>" in replies[0]
        assert looked_up == []
    finally:
        await world.server.close()
        await queue.close()


async def test_unknown_local_user_bounces_and_foreign_is_routed(
        accounts: App, tmp_path: Path) -> None:
    looked_up: list[str] = []

    async def lookup(domain: str) -> list[str]:
        looked_up.append(domain)
        raise OSError("no route in this test")

    queue = make_queue(accounts, mx_lookup=lookup)
    await queue.start()
    world = await start_world(accounts, tmp_path, outbound=queue)
    try:
        ref = await accounts.accounts.resolve(ALICE)
        await queue.submit(ref, ALICE, ["nobody@example.test", BOB],
                           b"From: alice@example.test\r\nSubject: hello\r\n\r\nhi\r\n")
        await queue.wait_until(lambda entries: not entries)
        bounces = [m for m in await world.inbox(ALICE) if b"Status: 5.1.1" in m]
        assert len(bounces) == 1 and b"nobody@example.test" in bounces[0]
        assert len([m for m in await world.inbox(BOB) if b"Subject: hello" in m]) == 1
        assert looked_up == []
        # A foreign address in the same kind of message is looked up (and retried).
        await queue.submit(ref, ALICE, ["carol@remote.test"],
                           b"From: alice@example.test\r\nSubject: x\r\n\r\nx\r\n")
        await queue.wait_until(lambda _entries: looked_up == ["remote.test"])
    finally:
        await world.server.close()
        await queue.close()
