"""A full mailbox over SMTP (issue 16 point 2): LMTP answers 552 5.2.2 for that
recipient alone; the MX gives 552 5.2.2 when no copy could be stored for that
reason and 451 when others were (the sender retries; nothing is lost)."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from letterlock.services.accounts.quotas import Quota
from smtp.conftest import ALICE, BOB, World

MSG = b"From: a@example.org\r\nSubject: q\r\n\r\nhello\r\n"


def _lmtp(port: int, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("a@example.org")
        for r in rcpts:
            client.rcpt(r)
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(MSG + b".\r\n")
        return {r: client.getreply() for r in rcpts}


async def test_lmtp_refuses_only_the_full_mailbox(world: World) -> None:
    await world.app.quotas.set_limits(BOB, Quota(messages=0))
    assert world.lmtp_port is not None
    replies = await asyncio.to_thread(_lmtp, world.lmtp_port, [ALICE, BOB])
    assert replies[ALICE][0] == 250
    assert replies[BOB][0] == 552 and replies[BOB][1].startswith(b"5.2.2")
    assert len(await world.inbox(ALICE)) == 1 and await world.inbox(BOB) == []


async def test_mx_says_mailbox_full_or_try_later(world: World) -> None:

    def send(rcpts: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", world.mx_port) as client:
            client.sendmail("a@example.org", rcpts, MSG)

    await world.app.quotas.set_limits(BOB, Quota(messages=0))
    with pytest.raises(smtplib.SMTPDataError) as full:
        await asyncio.to_thread(send, [BOB])
    assert full.value.smtp_code == 552 and full.value.smtp_error.startswith(b"5.2.2")
    with pytest.raises(smtplib.SMTPDataError) as later:
        await asyncio.to_thread(send, [ALICE, BOB])
    assert later.value.smtp_code == 451  # Alice's copy is stored; a retry may repeat it
    await world.app.quotas.set_limits(BOB, Quota())
    await asyncio.to_thread(send, [BOB])
    assert len(await world.inbox(BOB)) == 1
