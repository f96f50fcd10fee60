"""rspamd switched on but not there: the server says so once (at start) and delivers
everything unchecked. Needs no rspamd: the URL points at a loopback port nobody
listens on."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.config import SmtpConfig, SpamConfig
from letterlock.mime.structure import header_end
from letterlock.services.mail.rspamd import SpamFilter
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.smtp.server import SmtpServer
from smtp.conftest import ALICE, World, server_tls
from smtp.serve_process import free_ports, start_serve

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
