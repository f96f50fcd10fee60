"""RFC 5321 4.5.1: postmaster@ every hosted domain, and a bare <postmaster>, reach a
person; so does abuse@ (RFC 2142): the account of that address, else the configured
smtp.postmaster, else the domain's first account, else the server's first account."""

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


async def test_postmaster_and_abuse_are_accepted_by_default(world: World) -> None:
    # No account of those names, nothing configured: the domain's first account
    # (alice, made before bob) takes them, whatever the case of the local part.
    for address in ("postmaster", "Postmaster@example.test", "ABUSE@example.test"):
        code, _ = await asyncio.to_thread(rcpt, world.mx_port, address)
        assert code == 250, address
        assert await asyncio.to_thread(send, world.mx_port, address) == {}
    assert len(await world.inbox(ALICE)) == 3
    assert await world.inbox(BOB) == []
    # Only these two are special: other unknown users are still refused.
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "nobody@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


async def test_each_domain_s_postmaster_reaches_that_domain_s_first_account(
        world: World) -> None:
    await world.app.add_domain("other.test")
    await world.app.add_domain("empty.test")
    await world.app.accounts.create("carol@other.test", "eu-dublin", PASSWORD)
    assert await asyncio.to_thread(send, world.mx_port, "postmaster@other.test") == {}
    assert await asyncio.to_thread(send, world.mx_port, "abuse@other.test") == {}
    assert len(await world.inbox("carol@other.test")) == 2
    # A domain without accounts: the server's first account.
    assert await asyncio.to_thread(send, world.mx_port, "postmaster@empty.test") == {}
    assert len(await world.inbox(ALICE)) == 1


async def test_an_account_named_abuse_gets_its_own_mail(world: World) -> None:
    await world.app.accounts.create("abuse@example.test", "eu-dublin", PASSWORD)
    assert await asyncio.to_thread(send, world.mx_port, "abuse@example.test") == {}
    assert len(await world.inbox("abuse@example.test")) == 1
    assert await world.inbox(ALICE) == []


async def test_an_account_named_postmaster_gets_the_bare_form(world: World) -> None:
    await world.app.accounts.create("postmaster@example.test", "us-east", PASSWORD)
    assert await asyncio.to_thread(send, world.mx_port, "PostMaster") == {}
    [stored] = await world.inbox("postmaster@example.test")
    assert stored.endswith(MESSAGE)


async def test_configured_postmaster_takes_both_forms(configured: World) -> None:
    for address in ("postmaster", "POSTMASTER@example.test", "abuse@example.test"):
        code, _ = await asyncio.to_thread(rcpt, configured.mx_port, address)
        assert code == 250
        assert await asyncio.to_thread(send, configured.mx_port, address) == {}
    assert len(await configured.inbox(BOB)) == 3
    assert await configured.inbox(ALICE) == []
    # Only postmaster is special: other unknown users are still refused.
    code, _ = await asyncio.to_thread(rcpt, configured.mx_port, "nobody@example.test")
    assert code == 550
