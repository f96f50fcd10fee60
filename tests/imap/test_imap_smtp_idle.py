"""Mail delivered over SMTP reaches a client in IMAP IDLE within one second."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import socket

from imap_script import Imap

from letterlock.smtp.server import start_smtp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_smtp_delivery_reaches_idle_client_within_one_second(imap: Imap) -> None:
    config = imap.app.config
    config = dataclasses.replace(config, smtp=dataclasses.replace(
        config.smtp, port=_free_port(), submission_port=_free_port()))
    stop = await start_smtp(dataclasses.replace(imap.app, config=config), None)
    try:
        c = await imap.session("INBOX")
        c.send(b"a2 IDLE")
        assert (await c.response()).startswith(b"+ ")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", config.smtp.port) as smtp:
                smtp.sendmail("someone@example.org", [imap.user],
                              b"From: someone@example.org\r\nSubject: push\r\n\r\nhello\r\n")

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(send)  # returns after 250: the message is durable
        acknowledged = loop.time()
        line = await c.response(timeout=1.0)
        assert line.rstrip() == b"* 1 EXISTS"
        assert loop.time() - acknowledged < 1.0
        c.send(b"DONE")
        assert (await c.until("a2"))[-1] == b"a2 OK IDLE terminated"
        lines = await c.command("a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: push" in lines[0]
    finally:
        await stop()
