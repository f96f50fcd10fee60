"""Submission accepts as sender (MAIL FROM, From:, Sender:) only the authenticated
account's own addresses, aliases and sub-addresses, or what an operator granted
(RFC 6409 4.1; issue 13 point 7: a local user could put another user's address in
From: and it left DKIM-signed)."""

from __future__ import annotations

import asyncio
import logging
import smtplib

import dkim
import pytest

from letterlock.app import App
from letterlock.services.mail import dkim_keys
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from smtp.conftest import ALICE, BOB, World
from smtp.test_smtp_outbound import make_queue, other, submitting_through
from support.env import PASSWORD

__all__ = ["other"]


def message(author: str, extra: str = "") -> bytes:
    return (f"From: {author}\r\n{extra}To: carol@other.test, bob@example.test\r\n"
            "Subject: ownership\r\nMessage-ID: <own1@example.test>\r\n\r\nHello\r\n").encode()


def submit(world: World, mail_from: str, rcpts: list[str],
           data: bytes) -> tuple[int, bytes] | dict[str, tuple[int, bytes]]:
    """sendmail's refusals as a dict, or the (code, text) of a refused MAIL or DATA."""
    with smtplib.SMTP("127.0.0.1", world.submission_port, timeout=10) as client:
        client.starttls(context=world.client_tls)
        client.login(ALICE, PASSWORD)
        try:
            return client.sendmail(mail_from, rcpts, data)
        except smtplib.SMTPSenderRefused as exc:
            return exc.smtp_code, exc.smtp_error
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) == LogEvent.SENDER_REFUSED]


async def test_alias_as_sender_is_accepted_and_dkim_signed(
        accounts: App, other: World, tmp_path: object) -> None:
    key = dkim_keys.create_key(accounts.config.control_dir, "example.test",
                               selector="test1024", bits=1024)
    await accounts.addresses.add_alias("sales@example.test", ALICE)
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:  # type: ignore[arg-type]
        data = message('"Sales" <SALES@example.test>')
        assert await asyncio.to_thread(submit, world, "sales@example.test",
                                       ["carol@other.test", BOB], data) == {}
        await queue.wait_until(lambda entries: not entries)
        [remote] = await other.inbox("carol@other.test")
        [local] = await world.inbox(BOB)
        assert b'From: "Sales" <SALES@example.test>\r\n' in local
        signature, rest = remote.split(b"DKIM-Signature:", 1)[1].split(b"\r\n", 1)
        assert b"d=example.test" in signature

        def dns_txt(name: bytes, timeout: int = 5) -> bytes:
            return key.txt_value().encode()

        assert dkim.verify(b"DKIM-Signature:" + signature + b"\r\n" + rest, dnsfunc=dns_txt)


async def test_someone_else_s_address_is_refused_and_nothing_leaves(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    await world.app.addresses.add_group("team@example.test", [ALICE, BOB])
    await world.app.addresses.set_catch_all("example.test", ALICE)
    cases = [
        (BOB, message(ALICE)),                                   # MAIL FROM
        (ALICE, message(BOB)),                                   # From:
        (ALICE, message(f"Alice <{ALICE}>, {BOB}")),             # a second author
        (ALICE, message(ALICE, f"From: {BOB}\r\n")),             # a second From:
        (ALICE, message(ALICE, f"Sender: {BOB}\r\n")),           # Sender:
        (ALICE, message("team@example.test")),                   # a group she is in
        (ALICE, message("nobody@example.test")),                 # caught by her catch-all
        (ALICE, message("bob+tag@example.test")),                # his sub-address
        (ALICE, message("not an address")),
    ]
    for mail_from, data in cases:
        outcome = await asyncio.to_thread(submit, world, mail_from, [BOB], data)
        assert isinstance(outcome, tuple), data
        code, text = outcome
        assert code in (550, 553) and text.startswith(b"5.7.1"), (data, outcome)
    assert await world.inbox(BOB) == []
    logged = refusals(caplog)
    assert len(logged) == len(cases)
    assert logged[0] == {"user": ALICE, "sender": BOB, "where": "mail-from"}
    assert logged[1] == {"user": ALICE, "sender": BOB, "where": "from"}
    assert logged[4] == {"user": ALICE, "sender": BOB, "where": "sender"}
    assert b"Hello" not in caplog.text.encode()


async def test_own_sub_address_and_domain_alias_are_the_account_s(world: World) -> None:
    await world.app.addresses.add_domain_alias("alias.test", "example.test")
    for author in ("alice+news@example.test", "Alice <alice@ALIAS.test>"):
        assert await asyncio.to_thread(submit, world, "alice+news@example.test", [BOB],
                                       message(author)) == {}, author
    assert len(await world.inbox(BOB)) == 2


async def test_granted_right_lets_the_account_send_as_another(world: World) -> None:
    app = world.app
    assert await app.addresses.grant_send_as(ALICE, BOB)
    assert await asyncio.to_thread(submit, world, BOB, [BOB], message(BOB)) == {}
    assert await app.addresses.grant_send_as(ALICE, "@other.test")
    assert await asyncio.to_thread(submit, world, "anyone@other.test", [BOB],
                                   message("Anyone <anyone@other.test>")) == {}
    assert len(await world.inbox(BOB)) == 2
    assert await app.addresses.grant_send_as(ALICE, BOB, on=False)
    code, text = await asyncio.to_thread(submit, world, ALICE, [BOB], message(BOB))
    assert (code, text[:5]) == (550, b"5.7.1")
