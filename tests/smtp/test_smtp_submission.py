"""Submission with smtplib: STARTTLS before AUTH, 530 without AUTH, sender ownership."""

from __future__ import annotations

import asyncio
import logging
import smtplib

import pytest

from smtp.conftest import ALICE, BOB, World
from support.env import PASSWORD

MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello Bob\r\n"


def _client(world: World) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", world.submission_port, timeout=10)
    client.ehlo("laptop.test")
    return client


def _tls_client(world: World) -> smtplib.SMTP:
    """A client past STARTTLS and the EHLO that must follow it (RFC 3207 4.2)."""
    client = _client(world)
    client.starttls(context=world.client_tls)
    client.ehlo("laptop.test")
    return client


async def test_auth_is_offered_only_after_starttls(world: World) -> None:
    def run() -> tuple[bool, tuple[int, bytes], bool]:
        with _client(world) as client:
            before = client.has_extn("auth")
            refused = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwYXNzd29yZA==")
            client.starttls(context=world.client_tls)
            client.ehlo("laptop.test")
            after = client.has_extn("auth") and "PLAIN" in client.esmtp_features["auth"] \
                and "LOGIN" in client.esmtp_features["auth"]
            return before, refused, after

    before, refused, after = await asyncio.to_thread(run)
    assert not before
    assert refused[0] == 538
    assert after


async def test_unauthenticated_mail_is_530(world: World) -> None:
    def run() -> tuple[int, bytes]:
        with _tls_client(world) as client:
            return client.mail(ALICE)

    code, text = await asyncio.to_thread(run)
    assert (code, text[:5]) == (530, b"5.7.0")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_authenticated_local_delivery(world: World, mechanism: str) -> None:
    def run() -> dict[str, tuple[int, bytes]]:
        with _tls_client(world) as client:
            client.user, client.password = ALICE, PASSWORD
            code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
            assert code == 235
            return client.sendmail(ALICE, [BOB], MESSAGE)

    assert await asyncio.to_thread(run) == {}
    [stored] = await world.inbox(BOB)
    assert b"with ESMTPSA id" in stored
    assert b"\r\nMessage-ID: <" in stored and b"\r\nDate: " in stored  # completed
    assert stored.endswith(MESSAGE)


async def test_wrong_password_and_failure_limit(world: World) -> None:
    def run() -> list[int]:
        codes = []
        with _tls_client(world) as client:
            client.user, client.password = ALICE, "not the password"
            for _ in range(3):
                try:
                    client.auth("PLAIN", client.auth_plain)
                except smtplib.SMTPAuthenticationError as exc:
                    codes.append(exc.smtp_code)
                except smtplib.SMTPServerDisconnected:
                    codes.append(-1)
            try:
                codes.append(client.noop()[0])  # the 421 already sent, then closed
            except smtplib.SMTPServerDisconnected:
                codes.append(-1)
        return codes

    codes = await asyncio.to_thread(run)
    assert codes[:3] == [535, 535, 535]
    assert codes[-1] in (421, -1)


async def test_mail_from_must_be_the_authenticated_address(world: World) -> None:
    def run() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        with _tls_client(world) as client:
            client.login(ALICE, PASSWORD)
            other = client.mail(BOB)
            null = client.mail("")
            own = client.mail("Alice@Example.TEST")
            return other, null, own

    other, null, own = await asyncio.to_thread(run)
    assert (other[0], other[1][:5]) == (553, b"5.7.1")
    assert null[0] == 553
    assert own[0] == 250


async def test_foreign_recipient_refused_without_outbound_queue(world: World) -> None:
    def run() -> tuple[int, bytes]:
        with _tls_client(world) as client:
            client.login(ALICE, PASSWORD)
            client.mail(ALICE)
            return client.rcpt("friend@elsewhere.test")

    code, _ = await asyncio.to_thread(run)
    assert code == 550


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_does_not_log_aiosmtpd_login_data_deprecation(
        world: World, mechanism: str, caplog: pytest.LogCaptureFixture) -> None:
    # Issue 17 point 3: every successful AUTH logged aiosmtpd's "Session.login_data is
    # deprecated" warning (aiosmtpd 1.4's own AUTH command sets that attribute). The
    # listener records the result with the current API only (AuthResult, auth_data).
    def run() -> tuple[int, int]:
        with _tls_client(world) as client:
            client.user, client.password = ALICE, PASSWORD
            code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
            again = client.docmd("AUTH", "PLAIN")[0]  # RFC 4954 4: 503 once authenticated
            client.sendmail(ALICE, [BOB], MESSAGE)
            return code, again

    caplog.set_level(logging.DEBUG)
    assert await asyncio.to_thread(run) == (235, 503)
    assert len(await world.inbox(BOB)) == 1
    warned = [r for r in caplog.records
              if r.levelno >= logging.WARNING and not r.name.startswith("letterlock")]
    assert warned == [], [r.getMessage() for r in warned]
