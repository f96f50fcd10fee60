"""MX worker processes (``smtp.workers``): several processes share the MX port,
every accepted message is stored exactly once, and IMAP IDLE in any process hears
about mail delivered by any other within a second."""

from __future__ import annotations

import asyncio
import imaplib
import os
import signal
import smtplib
import ssl
import time
from pathlib import Path

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.mail import change_relay
from letterlock.services.peers import MAX_PAYLOAD
from smtp.serve_process import children, start_serve
from support.connections import connect_served_by
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"
WORKERS_ENV = {"LETTERLOCK_SMTP_WORKERS": "2", "LETTERLOCK_IMAP_PROCESSES": "1"}
"""One MX worker, IMAP in the main process alone."""
BOTH_ENV = {"LETTERLOCK_SMTP_WORKERS": "2", "LETTERLOCK_IMAP_PROCESSES": "2"}
"""One worker serving MX and IMAP beside the main process."""


def test_change_ids_are_split_into_payloads_the_bus_takes() -> None:
    ids = list(range(10**6, 10**6 + 5000))
    payloads = change_relay.encode(ids)
    assert len(payloads) > 1
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert [i for p in payloads for i in change_relay.decode(p)] == ids
    assert change_relay.encode([]) == []


def _send(port: int, tag: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("test.example")
        client.mail("w@remote.test")
        client.rcpt(ALICE)
        code, reply = client.data(f"Subject: {tag}\r\nX-Tag: {tag}\r\n\r\nhi\r\n".encode())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]  # the queue id


def _idle_until(imap: imaplib.IMAP4_SSL, count: int, timeout: float) -> float:
    """Seconds until an untagged ``* count EXISTS`` arrives during IDLE."""
    start = time.monotonic()
    imap.sock.settimeout(timeout)
    while True:
        line = imap.readline()
        assert line, "IMAP connection closed"
        words = line.split()
        if len(words) >= 3 and words[2] == b"EXISTS" and int(words[1]) >= count:
            return time.monotonic() - start


async def test_workers_share_the_port_and_idle_sees_their_mail(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
    served = await asyncio.to_thread(start_serve, home, WORKERS_ENV)
    try:
        assert len(children(served.proc.pid)) == 1
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        imap = imaplib.IMAP4_SSL("127.0.0.1", served.imaps, ssl_context=ctx, timeout=20)
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        imap.send(b"i1 IDLE\r\n")
        assert imap.readline().startswith(b"+")
        count = 24
        queue_ids = await asyncio.gather(*(asyncio.to_thread(_send, served.mx, f"m{i}")
                                           for i in range(count)))
        waited = await asyncio.to_thread(_idle_until, imap, count, 5.0)
        assert waited < 1.0, f"IDLE heard of the last message after {waited:.2f} s"
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(b"i1 "):
            pass
        imap.logout()
        # A queue id starts with its process's prefix: both processes took mail.
        assert len({q[:8] for q in queue_ids}) == 2, queue_ids
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)
    assert not children(served.proc.pid)
    async with open_app(config) as app:
        session = await app.accounts.authenticate(ALICE, PASSWORD)
        box = await app.mailboxes.get_mailbox(session, "INBOX")
        msgs = await app.mailboxes.messages(session, box.id)
        bodies = await app.mailboxes.bodies(session, msgs)
        tags = sorted(b.split(b"X-Tag: ")[1].split(b"\r\n")[0].decode()
                      for b in bodies.values())
        assert tags == sorted(f"m{i}" for i in range(count))


async def test_workers_stop_when_serve_is_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    served = await asyncio.to_thread(start_serve, home, WORKERS_ENV)
    [worker] = children(served.proc.pid)
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its serve process")


def _imaps(port: int) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
    imap.login(ALICE, PASSWORD)
    return imap


def _deliver_through(pid: int, port: int, tag: str) -> None:
    """One message over an MX connection served by process ``pid``."""
    client = connect_served_by(pid, lambda: smtplib.SMTP("127.0.0.1", port, timeout=20),
                               lambda c: c.sock, lambda c: c.quit())
    with client:
        client.ehlo("test.example")
        client.sendmail("w@remote.test", [ALICE], f"Subject: {tag}\r\n\r\nhi\r\n".encode())


async def test_mx_in_one_process_wakes_idle_in_the_other(tmp_path: Path) -> None:
    """smtp.workers = imap.processes = 2: one worker serves both, and mail taken by
    either process wakes an IDLE session in the other."""
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
    served = await asyncio.to_thread(start_serve, home, BOTH_ENV)
    try:
        [worker] = children(served.proc.pid)
        main = served.proc.pid
        for count, (idle_on, mx_on) in enumerate([(main, worker), (worker, main)], 1):
            imap = await asyncio.to_thread(
                connect_served_by, idle_on, lambda: _imaps(served.imaps),
                lambda c: c.sock, lambda c: c.logout())
            imap.select("INBOX")
            imap.send(b"i1 IDLE\r\n")
            assert imap.readline().startswith(b"+")
            await asyncio.to_thread(_deliver_through, mx_on, served.mx, f"m{count}")
            waited = await asyncio.to_thread(_idle_until, imap, count, 5.0)
            assert waited < 1.0, f"IDLE in {idle_on} heard of mail {mx_on} took after " \
                f"{waited:.2f} s"
            imap.send(b"DONE\r\n")
            while not imap.readline().startswith(b"i1 "):
                pass
            imap.logout()
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)
    assert not children(served.proc.pid)
