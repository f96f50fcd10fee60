"""rspamd switched on but not there: the server says so once (at start) and delivers
everything unchecked. Needs no rspamd: the URL points at a loopback port nobody
listens on."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import smtplib
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import SmtpConfig, SpamConfig
from letterlock.imap.server import ImapServer
from letterlock.mime.structure import header_end
from letterlock.services.mail.rspamd import RspamdClient, SpamFilter
from letterlock.services.mail.spam_learning import SpamLearner
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.smtp.server import SmtpServer
from smtp.conftest import ALICE, World, server_tls
from smtp.serve_process import free_ports, start_serve
from support.env import PASSWORD

MESSAGE = (b"From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: Hi\r\n"
           b"Message-ID: <absent@remote.test>\r\n\r\nHello.\r\n")


def closed_url() -> str:
    [port] = free_ports(1)
    return f"http://127.0.0.1:{port}"


async def test_unreachable_rspamd_warns_once_and_mail_still_arrives(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    spam = SpamFilter.from_config(SpamConfig(rspamd="on", rspamd_url=closed_url(),
                                             timeout_s=5))
    assert spam is not None and not await spam.probe()
    server = SmtpServer(accounts.delivery, accounts.accounts, None,
                        SmtpConfig(port=0, submission_port=0, sender_checks=False),
                        "mx.example.test", server_tls(tmp_path), lmtp=False, spam=spam)
    ports = await server.start()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", ports.mx, timeout=10) as client:
            client.sendmail("carol@remote.test", [ALICE], MESSAGE)
            client.sendmail("carol@remote.test", [ALICE], MESSAGE)

    try:
        await asyncio.to_thread(send)
    finally:
        await server.close()
    world = World(accounts, server, ports.mx, 0, None, None)  # type: ignore[arg-type]
    stored = await world.inbox(ALICE)
    assert len(stored) == 2
    assert all(b"X-Spam-Status" not in m[:header_end(m)] for m in stored)
    down = [r for r in caplog.records
            if getattr(r, "ll_event", None) is LogEvent.SPAM_FILTER_DOWN]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    assert "Connect call failed" in str(dict(down[0].ll_fields)["reason"])  # type: ignore[attr-defined]


def test_serve_says_at_start_that_rspamd_is_missing(tmp_path: Path) -> None:
    env = {"LETTERLOCK_SPAM_RSPAMD": "on", "LETTERLOCK_SPAM_RSPAMD_URL": closed_url(),
           "LETTERLOCK_SMTP_SENDER_CHECKS": "false"}
    served = start_serve(tmp_path / "home", env=env, args=("--demo",))
    try:
        started = "".join(served.output)
        warnings = [line for line in started.splitlines() if "spam:filter:unavailable" in line]
        assert len(warnings) == 1, started
        assert "level=warning" in warnings[0] or '"warning"' in warnings[0]
        with smtplib.SMTP("127.0.0.1", served.mx, timeout=30) as client:
            client.sendmail("carol@remote.test", [ALICE], MESSAGE)  # 250: delivered
    finally:
        served.proc.terminate()
        served.proc.wait(timeout=30)


async def test_learning_never_holds_up_the_imap_reply(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A controller that takes the request and never answers: MOVE is answered at once,
    the learning waits in the background, and ends (logged) when the connection does."""
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    received = asyncio.Event()
    requests: list[bytes] = []
    hang_up = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while b"silent-1@remote.test" not in data:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
        requests.append(data)
        received.set()
        await hang_up.wait()
        writer.close()

    controller = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = controller.sockets[0].getsockname()[1]
    learner = SpamLearner(accounts.mailboxes, RspamdClient(
        closed_url(), f"http://127.0.0.1:{port}", timeout_s=120))
    accounts.mailboxes.add_filing_hook(learner)
    ref = await accounts.accounts.resolve_for_delivery(ALICE)
    await accounts.delivery.deliver(MESSAGE.replace(b"absent@", b"silent-1@"), [ref])
    imap = ImapServer(accounts.accounts, accounts.mailboxes, accounts.config.imap, None)
    await imap.start("127.0.0.1", 0, 0)

    def move() -> str:
        client = imaplib.IMAP4("127.0.0.1", imap.port)
        client.login(ALICE, PASSWORD)
        client.select("INBOX")
        status = client.uid("MOVE", "1", "Junk")[0]
        client.logout()
        return str(status)

    try:
        assert await asyncio.to_thread(move) == "OK"
        await asyncio.wait_for(received.wait(), 60)
        # The reply came while rspamd still held the request: nothing learned yet.
        assert requests[0].startswith(b"POST /learnspam HTTP/1.1\r\n")
        assert not any(getattr(r, "ll_event", None) is LogEvent.SPAM_LEARNED
                       for r in caplog.records)
        hang_up.set()
        await learner.close()
    finally:
        hang_up.set()
        controller.close()
        await imap.close()
    [line] = [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
              if getattr(r, "ll_event", None) is LogEvent.SPAM_LEARNED]
    assert line["learn"] == "spam" and line["learned"] == 0 and line["reason"]
