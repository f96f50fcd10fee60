"""Addresses beyond an account's own, delivered to over real SMTP (smtplib, swaks):
aliases, sub-addresses (RFC 5233), catch-alls, groups across regions and domain
aliases; unknown addresses still get 550 5.1.1 (issue 16 point 1)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import smtplib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.app import App, initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from smtp.conftest import ALICE, BOB, World, start_world
from support.env import PASSWORD, make_config

MARKER = b"group-copy-7f3a1c"
MESSAGE = b"Subject: addresses\r\n\r\nHello " + MARKER + b"\r\n"


def send(port: int, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("someone@remote.test", rcpts, MESSAGE)


def rcpt(port: int, address: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.remote.test")
        client.mail("someone@remote.test")
        return client.rcpt(address)


def lmtp(port: int, rcpts: list[str]) -> list[tuple[int, bytes]]:
    with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mta.example.test")
        client.mail("someone@remote.test")
        for address in rcpts:
            assert client.rcpt(address)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(MESSAGE + b".\r\n")
        return [client.getreply() for _ in rcpts]


async def stored_by_region(app: App) -> dict[str, dict[str, int]]:
    """region -> account -> messages stored in that region's cell."""
    out: dict[str, dict[str, int]] = {}
    for cell in app.cells:
        counts = out.setdefault(cell.region.id, {})
        for record in await cell.store.list_accounts():
            n = 0
            for box in await cell.store.list_mailboxes(record.id):
                n += len(await cell.store.list_messages(box.id, with_summary=False))
            if n:
                counts[record.address] = n
    return out


def resolved(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [{k: v for k, v in r.ll_fields.items() if v is not None}  # type: ignore[attr-defined]
            for r in caplog.records if getattr(r, "ll_event", None) == LogEvent.ADDRESS_RESOLVED]


async def test_alias_reaches_its_account(world: World,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    await world.app.addresses.add_alias("Sales@example.test", BOB)
    assert await asyncio.to_thread(send, world.mx_port, ["sales@example.test"]) == {}
    assert await asyncio.to_thread(send, world.mx_port, ["SALES@Example.Test"]) == {}
    assert len(await world.inbox(BOB)) == 2 and await world.inbox(ALICE) == []
    [first, _] = resolved(caplog)
    assert first == {"rcpt": "sales@example.test", "via": "alias", "targets": 1,
                     "regions": "eu-dublin", "account": BOB}
    assert MARKER.decode() not in caplog.text  # no body in the log


async def test_subaddress_reaches_the_account_and_its_alias(world: World) -> None:
    await world.app.addresses.add_alias("sales@example.test", BOB)
    rcpts = ["alice+lists@example.test", "sales+web@example.test", "alice+@example.test"]
    assert await asyncio.to_thread(send, world.mx_port, rcpts[:2]) == {}
    assert len(await world.inbox(ALICE)) == 1 and len(await world.inbox(BOB)) == 1
    # An empty tag is a tag too; a separator at the start is not a sub-address.
    assert (await asyncio.to_thread(rcpt, world.mx_port, rcpts[2]))[0] == 250
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "+alice@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


async def test_unknown_addresses_are_still_550(world: World) -> None:
    for address in ("nobody@example.test", "nobody+tag@example.test",
                    "someone@alias.test"):
        code, text = await asyncio.to_thread(rcpt, world.mx_port, address)
        assert (code, text[:5]) in {(550, b"5.1.1"), (550, b"5.7.1")}, address
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "nobody@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


async def test_catch_all_takes_what_nothing_else_does(world: World) -> None:
    await world.app.addresses.set_catch_all("example.test", BOB)
    await world.app.addresses.add_alias("sales@example.test", ALICE)
    assert await asyncio.to_thread(
        send, world.mx_port, ["whoever@example.test", "sales@example.test", ALICE]) == {}
    # The alias and the account keep their mail; only the unknown address is caught.
    assert len(await world.inbox(BOB)) == 1
    assert len(await world.inbox(ALICE)) == 1  # one copy though named twice
    # postmaster@ stays with its taker (RFC 5321 4.5.1), not the catch-all.
    assert await asyncio.to_thread(send, world.mx_port, ["postmaster@example.test"]) == {}
    assert len(await world.inbox(ALICE)) == 2
    await world.app.addresses.remove("@example.test")
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "whoever@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


async def test_group_seals_one_copy_per_member_in_each_member_s_region_only(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    app = world.app
    await app.accounts.create("carol@example.test", "eu-dublin", PASSWORD)
    await app.addresses.add_group("team@example.test", [ALICE, BOB, "carol@example.test"])
    assert await asyncio.to_thread(send, world.mx_port, ["team@example.test"]) == {}
    assert await stored_by_region(app) == {
        "us-east": {ALICE: 1}, "eu-dublin": {BOB: 1, "carol@example.test": 1}}
    for address in (ALICE, BOB, "carol@example.test"):
        [body] = await world.inbox(address)
        assert body.endswith(MESSAGE)
    # Each region's book names its own members only; the control side only regions.
    assert await app.addresses.book("us-east").targets("team@example.test") == [ALICE]
    assert await app.addresses.book("eu-dublin").targets("team@example.test") == [
        BOB, "carol@example.test"]
    control = (app.config.control_dir / "addresses.sqlite3").read_bytes()
    assert b"alice@" not in control and b"bob@" not in control
    # Sealed at rest in both regions.
    for path in app.config.home.rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), path
    [line] = resolved(caplog)
    assert line == {"rcpt": "team@example.test", "via": "group", "targets": 3,
                    "regions": "eu-dublin,us-east"}


async def test_group_and_member_named_together_get_one_copy(world: World) -> None:
    await world.app.addresses.add_group("team@example.test", [ALICE, BOB])
    assert await asyncio.to_thread(send, world.mx_port, ["team@example.test", BOB]) == {}
    assert len(await world.inbox(ALICE)) == 1 and len(await world.inbox(BOB)) == 1


async def test_lmtp_answers_a_group_once_delivered_to_all(world: World) -> None:
    assert world.lmtp_port is not None
    await world.app.addresses.add_group("team@example.test", [ALICE, BOB])
    replies = await asyncio.to_thread(lmtp, world.lmtp_port, ["team@example.test", ALICE])
    assert [code for code, _ in replies] == [250, 250]
    assert len(await world.inbox(ALICE)) == 1 and len(await world.inbox(BOB)) == 1


async def test_domain_alias_maps_every_address(world: World,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    await world.app.addresses.add_domain_alias("alias.test", "example.test")
    await world.app.addresses.add_alias("sales@example.test", BOB)
    assert await asyncio.to_thread(
        send, world.mx_port, ["alice@alias.test", "sales@ALIAS.test", "bob+x@alias.test"]) == {}
    assert len(await world.inbox(ALICE)) == 1 and len(await world.inbox(BOB)) == 1
    assert {(r["rcpt"], r["via"]) for r in resolved(caplog)} == {
        ("alice@alias.test", "domain-alias"), ("sales@alias.test", "domain-alias"),
        ("bob+x@alias.test", "subaddress")}
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "nobody@alias.test")
    assert (code, text[:5]) == (550, b"5.1.1")
    await world.app.addresses.remove_domain_alias("alias.test")
    code, text = await asyncio.to_thread(rcpt, world.mx_port, "alice@alias.test")
    assert (code, text[:5]) == (550, b"5.7.1")  # another domain again: no relay


async def test_deleted_account_takes_its_alias_and_leaves_its_groups(world: World) -> None:
    app = world.app
    await app.addresses.add_alias("sales@example.test", BOB)
    await app.addresses.add_group("team@example.test", [ALICE, BOB])
    await app.accounts.delete(BOB)
    code, _ = await asyncio.to_thread(rcpt, world.mx_port, "sales@example.test")
    assert code == 550
    assert await app.addresses.members("team@example.test") == [ALICE]
    assert await asyncio.to_thread(send, world.mx_port, ["team@example.test"]) == {}
    assert len(await world.inbox(ALICE)) == 1


async def test_moved_account_takes_its_address_rows_along(world: World) -> None:
    app = world.app
    await app.addresses.add_alias("sales@example.test", BOB)
    await app.addresses.grant_send_as(BOB, "boss@example.test")
    await app.accounts.move(BOB, "us-east", settle_s=0)
    assert await app.addresses.book("eu-dublin").addresses_of(BOB) == []
    assert await app.addresses.book("eu-dublin").grants(BOB) == []
    assert await app.addresses.grants(BOB) == ["boss@example.test"]
    assert await asyncio.to_thread(send, world.mx_port, ["sales@example.test"]) == {}
    assert await stored_by_region(app) == {"us-east": {BOB: 1}, "eu-dublin": {}}


@pytest.fixture
async def separator_off(tmp_path: Path) -> AsyncIterator[World]:
    config = make_config(tmp_path / "home", LETTERLOCK_SMTP_SUBADDRESS_SEPARATOR="")
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        world = await start_world(app, tmp_path)
        try:
            yield world
        finally:
            await world.server.close()


async def test_subaddressing_can_be_switched_off(separator_off: World) -> None:
    code, text = await asyncio.to_thread(rcpt, separator_off.mx_port,
                                         "alice+tag@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed "
                    "(Debian package swaks; .ci/run installs it)")
async def test_swaks_delivers_to_an_alias_and_a_group(world: World) -> None:
    await world.app.addresses.add_alias("info@example.test", ALICE)
    await world.app.addresses.add_group("all@example.test", [ALICE, BOB])

    def swaks(to: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(world.mx_port),
             "--from", "someone@remote.test", "--to", to, "--helo", "client.remote.test",
             "--body", "via swaks"], capture_output=True, text=True, timeout=60)

    for to in ("info@example.test", "all@example.test"):
        proc = await asyncio.to_thread(swaks, to)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(await world.inbox(ALICE)) == 2 and len(await world.inbox(BOB)) == 1
    proc = await asyncio.to_thread(swaks, "nobody@example.test")
    assert proc.returncode != 0 and "550 5.1.1" in proc.stdout
