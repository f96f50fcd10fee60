"""The outbound queue end to end: submission -> sealed spool -> delivery to Postfix's
smtp-sink and to a second letterlock instance (DKIM verified there), retries across
a restart, bounces (RFC 3464) for permanent failures and for expiry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest

from letterlock.app import App, initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.mail import dkim_keys
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.mail.outbound_routes import MxLookup
from smtp.conftest import ALICE, World, start_world
from support.env import PASSWORD, make_config

MARKER = b"the-secret-marker-7f3a"
MESSAGE = (b"From: alice@example.test\r\nTo: carol@other.test\r\nSubject: out\r\n"
           b"Message-ID: <out1@example.test>\r\n\r\nHello Carol " + MARKER + b"\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit(world: World, rcpts: list[str], message: bytes = MESSAGE) -> dict[str, object]:
    with smtplib.SMTP("127.0.0.1", world.submission_port, timeout=10) as client:
        client.starttls(context=world.client_tls)
        client.login(ALICE, PASSWORD)
        return client.sendmail(ALICE, rcpts, message)  # type: ignore[return-value]


def make_queue(app: App, *, port: int = 25, smarthost: str = "", tls: str = "opportunistic",
               clock: object = None, max_age_s: float = 3600,
               tls_context: ssl.SSLContext | None = None,
               mx_lookup: MxLookup | None = None) -> OutboundQueue:
    settings = OutboundSettings(hostname="mx.example.test", smarthost=smarthost,
                                tls_policy=tls, port=port, retry_base_s=0.2,
                                retry_max_s=0.5, timeout_s=5, max_age_s=max_age_s,
                                tls_context=tls_context)

    async def loopback(domain: str) -> list[str]:
        return ["127.0.0.1"]

    kwargs = {"clock": clock} if clock is not None else {}
    return OutboundQueue(app.config.home, app.delivery, app.accounts,
                         DkimKeys(app.config.control_dir), settings,
                         mx_lookup=mx_lookup or loopback,
                         **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def submitting_through(app: App, tmp_path: Path,
                             queue: OutboundQueue) -> AsyncIterator[World]:
    """``queue`` started and listeners submitting into it; both closed afterwards."""
    await queue.start()
    world = await start_world(app, tmp_path, outbound=queue)
    try:
        yield world
    finally:
        await world.server.close()
        await queue.close()


@pytest.fixture
async def other(tmp_path: Path) -> AsyncIterator[World]:
    """A second letterlock instance hosting other.test, with carol in eu-dublin."""
    config = make_config(tmp_path / "other-home")
    await initialise(config, InitOptions(domains=("other.test",)))
    async with open_app(config) as app:
        await app.accounts.create("carol@other.test", "eu-dublin", PASSWORD)
        world = await start_world(app, tmp_path / "other-tls")
        try:
            yield world
        finally:
            await world.server.close()


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_queued_mail_is_sealed_at_rest_in_the_senders_region(
        accounts: App, tmp_path: Path) -> None:
    dkim_keys.create_key(accounts.config.control_dir, "example.test", selector="test1024",
                         bits=1024)
    queue = make_queue(accounts, smarthost=f"127.0.0.1:{free_port()}")  # nothing listens
    await queue.open()  # not started: the message stays queued
    world = await start_world(accounts, tmp_path, outbound=queue)
    try:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        [entry] = queue.entries()
        assert entry.region == "us-east" and entry.pending == ["carol@other.test"]
        spooled = _all_files(accounts.config.home / "regions" / "us-east" / "outbound")
        assert sorted(p.suffix for p in spooled) == [".env", ".msg"]
        for path in _all_files(accounts.config.home):
            data = path.read_bytes()
            assert MARKER not in data, path
            assert b"carol@other.test" not in data, path
    finally:
        await world.server.close()
        await queue.close()


async def test_delivery_to_postfix_smtp_sink(accounts: App, tmp_path: Path) -> None:
    sink = shutil.which("smtp-sink")
    if sink is None:
        pytest.skip("postfix smtp-sink not installed (see .ci/run)")
    # smtp-sink drops root privileges, so its dump directory must be reachable by
    # nobody (pytest's tmp_path is not).
    dump = Path(tempfile.mkdtemp(prefix="letterlock-sink-"))
    os.chmod(dump, 0o777)
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([sink, *user, "-d", str(dump / "%Y%m%d%H%M%S."),
                             f"127.0.0.1:{port}", "10"])
    queue = make_queue(accounts, smarthost=f"127.0.0.1:{port}")
    try:
        async with submitting_through(accounts, tmp_path, queue) as world:
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(submit, world, ["carol@other.test",
                                                           "dave@third.test"]) == {}
            await queue.wait_until(lambda entries: not entries)
            deadline = time.monotonic() + 10
            while not list(dump.iterdir()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            [dumped] = list(dump.iterdir())
            content = dumped.read_bytes()
            assert MARKER in content
            assert b"carol@other.test" in content and b"dave@third.test" in content
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(dump, ignore_errors=True)


async def test_delivery_to_second_instance_dkim_signed(accounts: App, other: World,
                                                       tmp_path: Path) -> None:
    key = dkim_keys.create_key(accounts.config.control_dir, "example.test", selector="test1024",
                               bits=1024)
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda entries: not entries)
        [received] = await other.inbox("carol@other.test")
        assert received.endswith(b"Hello Carol " + MARKER + b"\r\n")
        assert b"with ESMTPS id" in received  # opportunistic STARTTLS was used
        signed = received.split(b"DKIM-Signature:", 1)
        assert len(signed) == 2

        def dns_txt(name: bytes, timeout: int = 5) -> bytes:
            assert name == f"{key.selector}._domainkey.example.test.".encode()
            return key.txt_value().encode()

        assert dkim.verify(b"DKIM-Signature:" + signed[1], dnsfunc=dns_txt)


async def test_queue_survives_restart_and_retries(accounts: App, other: World,
                                                  tmp_path: Path) -> None:
    dead = make_queue(accounts, port=free_port())  # nothing listens there
    async with submitting_through(accounts, tmp_path, dead) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await dead.wait_until(lambda es: bool(es) and es[0].attempts >= 2)
        [entry] = dead.entries()
        assert entry.pending == ["carol@other.test"]
        assert entry.recipients[0].status == "4.4.1"
    revived = make_queue(accounts, port=other.mx_port)
    await revived.start()
    try:
        assert [e.id for e in revived.entries()] == [entry.id]
        await revived.wait_until(lambda es: not es)
        assert len(await other.inbox("carol@other.test")) == 1
        assert not _all_files(accounts.config.home / "regions" / "us-east" / "outbound")
    finally:
        await revived.close()


async def test_permanent_failure_bounces_to_sender(accounts: App, other: World,
                                                   tmp_path: Path) -> None:
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["nobody@other.test",
                                                       "carol@other.test"]) == {}
        await queue.wait_until(lambda entries: not entries)
        assert len(await other.inbox("carol@other.test")) == 1
        [bounce] = await world.inbox(ALICE)
        assert b"multipart/report; report-type=delivery-status" in bounce
        assert b"Final-Recipient: rfc822; nobody@other.test" in bounce
        assert b"Status: 5.1.1" in bounce
        assert b"Action: failed" in bounce
        assert b"carol@other.test>:" not in bounce
        assert b"Subject: out" in bounce  # original headers included


async def test_expired_message_bounces_with_4_4_7(accounts: App, tmp_path: Path) -> None:
    now = [datetime.now(UTC)]
    queue = make_queue(accounts, port=free_port(), clock=lambda: now[0], max_age_s=60)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        now[0] += timedelta(minutes=2)
        await queue.wait_until(lambda es: not es, timeout=10)
        [bounce] = await world.inbox(ALICE)
        assert b"Status: 4.4.7" in bounce


async def test_required_tls_refuses_plaintext_server(accounts: App, tmp_path: Path) -> None:
    # smtp-sink-like plaintext server: a letterlock MX without a TLS context
    from letterlock.config import SmtpConfig
    from letterlock.smtp.server import SmtpServer

    plain = SmtpServer(accounts.delivery, accounts.accounts, None,
                       SmtpConfig(port=0, submission_port=0), "plain.test", None)
    ports = await plain.start()
    queue = make_queue(accounts, port=ports.mx, tls="required")
    try:
        async with submitting_through(accounts, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
            [entry] = queue.entries()
            assert entry.recipients[0].status == "4.7.4"
    finally:
        await plain.close()


async def test_mixed_local_and_foreign_recipients(accounts: App, other: World,
                                                  tmp_path: Path) -> None:
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["bob@example.test",
                                                       "carol@other.test"]) == {}
        [local] = await world.inbox("bob@example.test")  # delivered before the 250
        assert local.endswith(b"Hello Carol " + MARKER + b"\r\n")
        await queue.wait_until(lambda entries: not entries)
        assert len(await other.inbox("carol@other.test")) == 1


async def test_domain_without_mail_host_bounces_5_1_2(accounts: App, tmp_path: Path) -> None:
    from letterlock.services.mail.outbound import NoMailHost

    async def no_host(domain: str) -> list[str]:
        raise NoMailHost(f"domain {domain} does not exist")

    queue = make_queue(accounts, mx_lookup=no_host)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@nowhere.test"]) == {}
        await queue.wait_until(lambda entries: not entries)
        [bounce] = await world.inbox(ALICE)
        assert b"Status: 5.1.2" in bounce and b"nowhere.test does not exist" in bounce


async def test_required_tls_verifies_the_certificate(accounts: App, other: World,
                                                     tmp_path: Path) -> None:
    # The second instance's self-signed certificate (tests/smtp/conftest.py server_tls)
    trusted = ssl.create_default_context(cafile=str(tmp_path / "other-tls" / "tls" / "cert.pem"))
    queue = make_queue(accounts, port=other.mx_port, tls="required", tls_context=trusted)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda entries: not entries)
        [received] = await other.inbox("carol@other.test")
        assert b"with ESMTPS id" in received
    # An untrusted certificate is not good enough under the required policy.
    untrusting = make_queue(accounts, port=other.mx_port, tls="required",
                            tls_context=ssl.create_default_context())
    async with submitting_through(accounts, tmp_path / "again", untrusting) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await untrusting.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        assert untrusting.entries()[0].pending == ["carol@other.test"]
        assert len(await other.inbox("carol@other.test")) == 1


NO_FROM = (b"To: carol@other.test, bob@example.test\r\nSubject: no from\r\n"
           b"Message-ID: <nofrom1@example.test>\r\n\r\nWho sent this? " + MARKER + b"\r\n")


async def test_submission_without_from_is_not_answered_451_for_remote_recipients(
        accounts: App, other: World, tmp_path: Path) -> None:
    # Issue 17 point 1: DKIM signing refused a message without From: ("The From header
    # field MUST be signed"), so a remote recipient got 451 and the client retried for
    # ever while a local one was accepted. The MSA adds From: (the authenticated
    # address), the same for every destination, and the result is signed.
    key = dkim_keys.create_key(accounts.config.control_dir, "example.test", selector="test1024",
                               bits=1024)
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test", "bob@example.test"],
                                       NO_FROM) == {}
        await queue.wait_until(lambda entries: not entries)
        [remote] = await other.inbox("carol@other.test")
        [local] = await world.inbox("bob@example.test")
        for stored in (remote, local):
            header = stored.split(b"\r\n\r\n", 1)[0]
            assert b"\r\nFrom: <alice@example.test>\r\n" in b"\r\n" + header + b"\r\n", stored
        signed = remote.split(b"DKIM-Signature:", 1)
        assert len(signed) == 2

        def dns_txt(name: bytes, timeout: int = 5) -> bytes:
            return key.txt_value().encode()

        assert dkim.verify(b"DKIM-Signature:" + signed[1], dnsfunc=dns_txt)


async def test_unsignable_submission_is_refused_for_good_not_451(accounts: App, other: World,
                                                                tmp_path: Path) -> None:
    # Issue 17 point 1, the other half: a header section DKIM cannot sign is refused
    # with a permanent 5.6.0 (not 451 for ever), before any local recipient has a copy.
    dkim_keys.create_key(accounts.config.control_dir, "example.test", selector="test1024",
                         bits=1024)
    broken = (b"From: alice@example.test\r\nTo: carol@other.test\r\n"
              b"this line is no header field\r\n\r\nbody\r\n")
    queue = make_queue(accounts, port=other.mx_port)
    async with submitting_through(accounts, tmp_path, queue) as world:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await asyncio.to_thread(submit, world, ["carol@other.test", "bob@example.test"],
                                    broken)
        assert refused.value.smtp_code == 554
        assert refused.value.smtp_error.startswith(b"5.6.0 ")
        assert queue.entries() == []
        assert await world.inbox("bob@example.test") == []


async def test_outbound_mail_from_carries_size_once(accounts: App, tmp_path: Path) -> None:
    # Issue 17 point 2: MAIL FROM went out as "size=890 SIZE=890" (aiosmtplib adds the
    # parameter itself when the receiver offers SIZE), which strict receivers refuse.
    # The receiver here is aiosmtpd, which offers SIZE and records MAIL's parameters.
    from aiosmtpd.controller import Controller

    seen: list[list[str]] = []

    class Recorder:
        async def handle_MAIL(self, server: object, session: object, envelope: Any,
                              address: str, options: list[str]) -> str:
            seen.append(options)
            envelope.mail_from = address
            return "250 OK"

        async def handle_DATA(self, server: object, session: object,
                              envelope: object) -> str:
            return "250 OK"

    port = free_port()
    receiver = Controller(Recorder(), hostname="127.0.0.1", port=port)
    receiver.start()
    try:
        queue = make_queue(accounts, smarthost=f"127.0.0.1:{port}")
        async with submitting_through(accounts, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda entries: not entries)
    finally:
        receiver.stop()
    [options] = seen
    sizes = [o for o in options if o.upper().startswith("SIZE=")]
    assert len(sizes) == 1, options
    assert int(sizes[0].split("=", 1)[1]) >= len(MESSAGE)
