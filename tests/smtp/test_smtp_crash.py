"""Acceptance: SIGKILL the server during an smtp-source run; after a restart every
message that received 250 is in its recipient's mailbox exactly once."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import alive, children, start_serve
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"
BOB = "bob@example.test"
SMTP_SOURCE = shutil.which("smtp-source")


def _sender(port: int, worker: int, acked: list[str], stop: threading.Event) -> None:
    """Send uniquely numbered messages until the server dies; record each 250."""
    seq = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                while not stop.is_set():
                    tag = f"w{worker}-{seq}"
                    msg = (f"Subject: crash {tag}\r\nX-Tag: {tag}\r\n\r\n"
                           + "payload line\r\n" * 40).encode()
                    client.sendmail("load@remote.test", [ALICE, BOB], msg)
                    acked.append(tag)  # only after the 250
                    seq += 1
        except (OSError, smtplib.SMTPException):
            seq += 1  # the message in flight may or may not be stored: never reuse its tag
            time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(SMTP_SOURCE is None, reason="postfix smtp-source not installed")
@pytest.mark.parametrize("workers", [0, 2])
async def test_sigkill_during_smtp_source_run(tmp_path: Path, workers: int) -> None:
    """With ``workers`` = 2 the MX worker process dies with serve (both SIGKILLed
    at once), as in a machine crash."""
    assert SMTP_SOURCE is not None
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        await app.accounts.create(BOB, "eu-dublin", PASSWORD)

    env = {"LETTERLOCK_SMTP_WORKERS": str(workers), "LETTERLOCK_IMAP_PROCESSES": "1"}
    served = await asyncio.to_thread(start_serve, home, env)
    doomed = children(served.proc.pid)
    helpers = children(served.proc.pid, "letterlock.services.mail.sealing")
    source = subprocess.Popen([SMTP_SOURCE, "-s", "10", "-m", "100000", "-l", "1024", "-f",
                               "src@remote.test", "-t", ALICE, f"127.0.0.1:{served.mx}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(served.mx, i, acked, stop))
               for i in range(4)]
    for t in threads:
        t.start()
    await asyncio.sleep(4)
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(10)
    # (Checked once the server is dead, so a failure leaves no server behind.)
    assert len(doomed) == max(0, workers - 1)
    # One helper per CPU that the MX processes leave free (crypto.seal_processes).
    assert len(helpers) == max(0, min(4, len(os.sched_getaffinity(0)) - max(1, workers)))
    # Sealing helpers hold nothing durable; with their server gone they stop by
    # themselves (their socket closes), leaving no orphan behind.
    for _ in range(100):
        if not any(alive(pid) for pid in helpers):
            break
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in helpers)
    await asyncio.sleep(0.5)
    stop.set()
    for t in threads:
        await asyncio.to_thread(t.join, 20)
    source.kill()
    source.wait(10)
    acked_at_kill = list(acked)
    assert len(acked_at_kill) > 20, "too little traffic before the kill"

    # Restart: the server comes back on the same data and takes mail again.
    served = await asyncio.to_thread(start_serve, home, env)
    try:
        def one_more() -> None:
            with smtplib.SMTP("127.0.0.1", served.mx, timeout=10) as client:
                client.sendmail("x@remote.test", [ALICE, BOB],
                                b"Subject: after restart\r\nX-Tag: after\r\n\r\nhi\r\n")

        await asyncio.to_thread(one_more)
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)

    async with open_app(config) as app:
        for address in (ALICE, BOB):
            session = await app.accounts.authenticate(address, PASSWORD)
            box = await app.mailboxes.get_mailbox(session, "INBOX")
            msgs = await app.mailboxes.messages(session, box.id)
            bodies = await app.mailboxes.bodies(session, msgs)
            tags: dict[str, int] = {}
            for msg in msgs:
                body = bodies[msg.uid]
                assert len(body) == msg.size
                for line in body.split(b"\r\n"):
                    if line.startswith(b"X-Tag: "):
                        tag = line[7:].decode()
                        tags[tag] = tags.get(tag, 0) + 1
            missing = [t for t in acked_at_kill if t not in tags]
            assert not missing, f"{address}: acknowledged but lost: {missing[:5]}"
            twice = [t for t, n in tags.items() if n > 1]
            assert not twice, f"{address}: stored twice: {twice[:5]}"
            assert tags.get("after") == 1
            if address == ALICE:
                assert len(msgs) > len(acked_at_kill)  # smtp-source traffic landed too
            print(f"{address}: {len(acked_at_kill)} acknowledged by tag, {len(msgs)} stored")
