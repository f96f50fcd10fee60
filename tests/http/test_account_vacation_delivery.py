"""End to end: the vacation form saved in the privacy center makes mail delivered to
the account over real SMTP (MX) and LMTP get an auto-reply to its sender, once per
sender per the form's days (RFC 5230 4.2), only when the message names the account or
one of the form's addresses, and not before the form's first day. Replies go to the
outbound queue (the filter tests' recording queue: the real queue's delivery is tested with the
filters, tests/smtp/test_smtp_filters.py)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_pages import csrf_of, login

from letterlock.app import App
from letterlock.http.server import make_api
from smtp.conftest import World, start_world
from smtp.test_smtp_filters import RecordingQueue
from support.env import PASSWORD

BOB = "bob@example.test"
ALIAS = "robert@example.test"
DAY = 86400


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world(app: App, tmp_path: Path) -> AsyncIterator[tuple[World, RecordingQueue, Clock]]:
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    await app.addresses.add_alias(ALIAS, BOB)
    w = await start_world(app, tmp_path)
    queue, clock = RecordingQueue(), Clock()
    runner = app.delivery.filters
    assert runner is not None
    runner.attach_outbound(queue)
    # The runner's clock decides when "once per days" is over; drive it by hand.
    runner._clock = clock
    try:
        yield w, queue, clock
    finally:
        await w.server.close()


async def save_form(app: App, **fields: str) -> str:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_api(app)), base_url="http://letterlock.test"
    ) as c:
        assert (await login(c, BOB)).status_code == 303
        page = await c.get("/account/vacation")
        # The form offers the account's aliases as its other addresses.
        assert ALIAS in page.text
        data = {
            "csrf": csrf_of(page.text),
            "on": "on",
            "subject": "",
            "text": "I am away until the 20th.\nAsk carol@example.test.",
            "days": "2",
            "start": "",
            "end": "",
            "addresses": ALIAS,
            **fields,
        }
        saved = await c.post("/account/vacation", data=data)
        assert saved.status_code == 200, saved.text
        return saved.text


def mx_send(port: int, sender: str, to_header: str, rcpt: str = BOB) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        refused = client.sendmail(
            sender,
            [rcpt],
            (
                f"From: <{sender}>\r\nTo: <{to_header}>\r\nSubject: Lunch?\r\n"
                f"Message-ID: <{sender}.1@remote.test>\r\n\r\nHello\r\n"
            ).encode(),
        )
        assert refused == {}


def lmtp_send(port: int, sender: str, to_header: str) -> None:
    with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mta.example.test")
        assert client.mail(sender)[0] == 250
        assert client.rcpt(BOB)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(
            f"From: <{sender}>\r\nTo: <{to_header}>\r\nSubject: Report\r\n\r\n"
            "body\r\n.\r\n".encode()
        )
        assert client.getreply()[0] == 250


async def test_the_saved_form_answers_each_sender_once_per_days(
    world: tuple[World, RecordingQueue, Clock],
) -> None:
    w, queue, clock = world
    await save_form(w.app)
    # Carol twice over SMTP: one reply. Dave over LMTP, to the alias: one reply.
    for _ in range(2):
        await asyncio.to_thread(mx_send, w.mx_port, "carol@remote.test", BOB)
    assert w.lmtp_port is not None
    await asyncio.to_thread(lmtp_send, w.lmtp_port, "dave@remote.test", ALIAS)
    # Erin's message names neither Bob nor the alias (Bob was a Bcc): no reply.
    await asyncio.to_thread(mx_send, w.mx_port, "erin@remote.test", "team@remote.test")
    assert [(f, r) for _, f, r, _ in queue.sent] == [
        ("", ["carol@remote.test"]),
        ("", ["dave@remote.test"]),
    ]
    reply = queue.sent[0][3]
    assert b"Subject: Auto: Lunch?" in reply and b"Auto-Submitted: auto-replied" in reply
    assert b"I am away until the 20th.\r\nAsk carol@example.test." in reply
    assert b"In-Reply-To: <carol@remote.test.1@remote.test>" in reply
    assert len(await w.inbox(BOB)) == 4  # every message is still delivered

    # One day later Carol still gets nothing; after the form's two days she does.
    clock.now += DAY
    await asyncio.to_thread(mx_send, w.mx_port, "carol@remote.test", BOB)
    assert len(queue.sent) == 2
    clock.now += DAY + 1
    await asyncio.to_thread(mx_send, w.mx_port, "carol@remote.test", BOB)
    assert [r for _, _, r, _ in queue.sent][2:] == [["carol@remote.test"]]


async def test_no_reply_before_the_first_day_nor_once_switched_off(
    world: tuple[World, RecordingQueue, Clock],
) -> None:
    w, queue, _clock = world
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    page = await save_form(w.app, start=tomorrow.isoformat(), subject="Away")
    assert f"from {tomorrow.isoformat()}" in page
    await asyncio.to_thread(mx_send, w.mx_port, "carol@remote.test", BOB)
    assert queue.sent == []
    await save_form(w.app, start="")
    await asyncio.to_thread(mx_send, w.mx_port, "dave@remote.test", BOB)
    assert [r for _, _, r, _ in queue.sent] == [["dave@remote.test"]]
    assert b"Subject: Away" not in queue.sent[0][3]  # the subject was cleared
    await save_form(w.app, on="off")
    await asyncio.to_thread(mx_send, w.mx_port, "erin@remote.test", BOB)
    assert len(queue.sent) == 1
    assert len(await w.inbox(BOB)) == 3
