"""Shutdown: idle sessions are told 421 at once; a message being stored when the
server stops still gets its 250 (cutting it off would make the client send it again)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from letterlock.app import App
from smtp.conftest import ALICE, start_world
from smtp.wire import Wire


async def test_a_message_being_stored_is_answered_before_shutdown(
        accounts: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = await start_world(accounts, tmp_path)
    entered, gate = asyncio.Event(), asyncio.Event()
    deliver = accounts.delivery.deliver

    async def held_deliver(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()  # the message is here, its storing not finished yet
        return await deliver(*args, **kwargs)

    monkeypatch.setattr(accounts.delivery, "deliver", held_deliver)
    closing: asyncio.Task[None] | None = None
    try:
        busy = await Wire.open(world.mx_port)
        await busy.cmd("EHLO client.test")
        assert (await busy.cmd("MAIL FROM:<someone@remote.test>"))[0] == 250
        assert (await busy.cmd(f"RCPT TO:<{ALICE}>"))[0] == 250
        assert (await busy.cmd("DATA"))[0] == 354
        busy.send(b"Subject: during shutdown\r\n\r\nstored once\r\n.\r\n")
        await asyncio.wait_for(entered.wait(), 10)
        idle = await Wire.open(world.mx_port)
        await idle.cmd("EHLO idle.test")

        closing = asyncio.create_task(world.server.close())
        assert (await idle.reply())[0] == 421  # told to go away at once
        gate.set()
        assert (await busy.reply())[0] == 250  # ...while the stored message is answered
        assert (await busy.reply())[0] == 421  # and then the session ends too
        await asyncio.wait_for(closing, 10)
    finally:
        gate.set()
        if closing is None:
            await world.server.close()
    [stored] = await world.inbox(ALICE)
    assert stored.endswith(b"stored once\r\n")
