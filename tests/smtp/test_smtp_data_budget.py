"""Message data in flight is bounded per process (issue 13 point 8): a message that
would pass smtp.max_data_in_flight_bytes is read to its end, discarded and answered
452 4.3.1 (the sender retries), one line is logged, the session goes on, and
everything taken is given back once a message is stored or refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.services.operations.log_events import LogEvent
from letterlock.smtp.limits import LimitSettings
from smtp.conftest import BOB, World, start_world
from smtp.wire import Wire

BUDGET = 100 * 1024


@pytest.fixture
async def tight(accounts: App, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(accounts, tmp_path,
                          limits=LimitSettings(max_data_in_flight=BUDGET))
    try:
        yield w
    finally:
        await w.server.close()


def _message(tag: str, size: int) -> bytes:
    line = b"x" * 75 + b".\r\n"  # a sentence end: DATA is read up to each
    return (f"From: a@example.org\r\nTo: {BOB}\r\nSubject: {tag}\r\n\r\n".encode()
            + line * (size // len(line)))


async def _envelope(port: int) -> Wire:
    w = await Wire.open(port)
    assert (await w.cmd("EHLO client.example"))[0] == 250
    assert (await w.cmd("MAIL FROM:<a@example.org>"))[0] == 250
    assert (await w.cmd(f"RCPT TO:<{BOB}>"))[0] == 250
    assert (await w.cmd("DATA"))[0] == 354
    return w


async def _subjects(world: World) -> list[bytes]:
    return [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in await world.inbox(BOB)]


async def test_a_message_past_the_budget_gets_452_and_the_session_goes_on(
        tight: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    data = tight.server._limits.data  # the budget under test
    w = await _envelope(tight.mx_port)
    w.send(_message("big", 2 * BUDGET) + b".\r\n")
    code, text = await w.reply()
    assert (code, text.split()[0]) == (452, "4.3.1")
    assert data.used == 0
    refused = [r for r in caplog.records
               if getattr(r, "ll_event", None) == LogEvent.CLIENT_REFUSED]
    assert [r.ll_fields["limit"] for r in refused] == ["data-in-flight"]  # type: ignore[attr-defined]
    # Same session: a message within the budget is taken.
    assert (await w.cmd("MAIL FROM:<a@example.org>"))[0] == 250
    assert (await w.cmd(f"RCPT TO:<{BOB}>"))[0] == 250
    assert (await w.cmd("DATA"))[0] == 354
    w.send(_message("small", 10 * 1024) + b".\r\n")
    assert (await w.reply())[0] == 250
    assert await _subjects(tight) == [b"small"]
    assert data.used == 0


async def test_messages_in_flight_share_one_budget(tight: World) -> None:
    data = tight.server._limits.data
    first, second = await _envelope(tight.mx_port), await _envelope(tight.mx_port)
    held = _message("first", 70 * 1024)
    first.send(held[: 60 * 1024])  # most of it, and the sender pauses
    async with asyncio.timeout(10):
        while data.used < 50 * 1024:
            await asyncio.sleep(0.01)
    second.send(_message("second", 60 * 1024) + b".\r\n")
    assert (await second.reply())[0] == 452  # 60 KiB held + 60 KiB > 100 KiB
    first.send(held[60 * 1024:] + b".\r\n")
    assert (await first.reply())[0] == 250
    assert data.used == 0
    # Now there is room again for the one refused.
    assert (await second.cmd("MAIL FROM:<a@example.org>"))[0] == 250
    assert (await second.cmd(f"RCPT TO:<{BOB}>"))[0] == 250
    assert (await second.cmd("DATA"))[0] == 354
    second.send(_message("second", 60 * 1024) + b".\r\n")
    assert (await second.reply())[0] == 250
    assert sorted(await _subjects(tight)) == [b"first", b"second"]


async def test_too_big_and_cut_off_messages_give_back_what_they_took(tight: World) -> None:
    data = tight.server._limits.data
    w = await _envelope(tight.mx_port)
    w.send(_message("huge", 300 * 1024) + b".\r\n")  # past max_message_bytes (256 KiB)
    assert (await w.reply())[0] in (552, 452)
    assert data.used == 0
    cut = await _envelope(tight.mx_port)
    cut.send(_message("cut", 50 * 1024)[: 40 * 1024])
    async with asyncio.timeout(10):
        while data.used == 0:
            await asyncio.sleep(0.01)
    cut.writer.close()
    async with asyncio.timeout(10):
        while data.used:
            await asyncio.sleep(0.01)
