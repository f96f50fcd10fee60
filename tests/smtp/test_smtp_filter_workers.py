"""Filters in MX worker processes (``smtp.workers``): a redirect taken by a worker is
spooled and sent by the main process's queue (told on the peer bus), so every
message redirected reaches the smarthost, whichever process took it."""

from __future__ import annotations

import asyncio
import smtplib
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import children, free_ports, start_serve
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"


class Sink:
    def __init__(self) -> None:
        self.tags: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for line in envelope.content.splitlines():
            if line.startswith(b"X-Tag: "):
                self.tags.append(line[7:].decode())
        return "250 OK"


def send(port: int, tag: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail("w@remote.test", [ALICE],
                        f"From: <w@remote.test>\r\nX-Tag: {tag}\r\n\r\nhi\r\n".encode())


async def test_redirects_from_every_process_are_sent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        session = await app.accounts.authenticate(ALICE, PASSWORD)
        await app.filters.put(session, "fwd", 'redirect "out@elsewhere.test";\r\n',
                              via="test")
        await app.filters.activate(session, "fwd", via="test")
    sink = Sink()
    (port,) = free_ports(1)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    served = await asyncio.to_thread(start_serve, home, {
        "LETTERLOCK_SMTP_WORKERS": "2", "LETTERLOCK_IMAP_PROCESSES": "1",
        "LETTERLOCK_SMTP_SMARTHOST": f"127.0.0.1:{port}",
        "LETTERLOCK_SMTP_OUTBOUND_TLS": "none"})
    try:
        assert len(children(served.proc.pid)) == 1
        tags = [f"m{i}" for i in range(16)]
        await asyncio.gather(*(asyncio.to_thread(send, served.mx, t) for t in tags))
        deadline = time.monotonic() + 60
        while len(sink.tags) < len(tags) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert sorted(sink.tags) == sorted(tags)
    finally:
        served.proc.terminate()
        served.proc.wait(30)
        controller.stop()
