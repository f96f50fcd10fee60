"""RFC 5321 4.5.1: postmaster@ every hosted domain, and a bare <postmaster>, reach a
person: the account of that address, or else the configured smtp.postmaster."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.conftest import ALICE, BOB, World, start_world
from support.env import PASSWORD, make_config

MESSAGE = b"Subject: to the postmaster\r\n\r\nYour server refused my mail.\r\n"


def rcpt(port: int, address: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        return client.rcpt(address)


def send(port: int, address: str) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("someone@remote.test", [address], MESSAGE)



@pytest.fixture
async def configured(tmp_path: Path) -> AsyncIterator[World]:
    config = make_config(tmp_path / "home", LETTERLOCK_SMTP_POSTMASTER=BOB.upper())
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        await app.accounts.create(BOB, "eu-dublin", PASSWORD)
        world = await start_world(app, tmp_path)
        try:
            yield world
        finally:
            await world.server.close()


async def test_without_a_postmaster_account_the_refusal_is_unknown_user(
        world: World) -> None:
    # Parsed (no 501 for the missing domain), then refused like any unknown user.
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "postmaster")
    assert (code, text[:5]) == (550, b"5.1.1")
    code, _ = await asyncio.to_thread(rcpt, world.mx_port, "Postmaster@example.test")
    assert code == 550


async def test_an_account_named_postmaster_gets_the_bare_form(world: World) -> None:
    await world.app.accounts.create("postmaster@example.test", "us-east", PASSWORD)
    assert await asyncio.to_thread(send, world.mx_port, "PostMaster") == {}
    [stored] = await world.inbox("postmaster@example.test")
    assert stored.endswith(MESSAGE)


async def test_configured_postmaster_takes_both_forms(configured: World) -> None:
    for address in ("postmaster", "POSTMASTER@example.test"):
        code, _ = await asyncio.to_thread(rcpt, configured.mx_port, address)
        assert code == 250
        assert await asyncio.to_thread(send, configured.mx_port, address) == {}
    assert len(await configured.inbox(BOB)) == 2
    assert await configured.inbox(ALICE) == []
    # Only postmaster is special: other unknown users are still refused.
    code, _ = await asyncio.to_thread(rcpt, configured.mx_port, "nobody@example.test")
    assert code == 550
