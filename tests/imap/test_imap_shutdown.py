"""Issue 17 point 7: SIGTERM or SIGINT of a real `letterlock serve` while clients are
connected. Every IMAP client (plain, STARTTLS, implicit TLS; between commands, in
IDLE, halfway through a command line or a literal), in the main process and in an
IMAP worker process, reads ``* BYE`` before its connection closes; SMTP and LMTP
sessions are ended too; the server exits 0 without a traceback or a CancelledError
and logs one ``server:process:stopped`` line per process, counting the connections
it ended. A client that stops reading in the middle of a large FETCH cannot hold
the shutdown up."""

from __future__ import annotations

import asyncio
import functools
import imaplib
import re
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import Served, children, start_serve
from support.connections import connect_served_by
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"
STOPPED = re.compile(r"event=server:process:stopped role=(\w+) connections=(\d+)")
EXIT_WITHIN_S = 30.0
"""A bound, not a speed target: a hung shutdown fails instead of waiting forever."""


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _home_with_alice(tmp_path: Path, big_messages: int = 0) -> Path:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        ref, _code = await app.accounts.create(ALICE, "us-east", PASSWORD)
        body = (b"x" * 998 + b"\r\n") * 4000  # 4 MB
        for n in range(big_messages):
            await app.delivery.deliver(
                b"From: bob@example.test\r\nTo: alice@example.test\r\n"
                + f"Subject: big {n}\r\n\r\n".encode() + body, [ref])
    return home


# -- the clients, each left in the state its name says ---------------------------------
def _plain(served: Served) -> imaplib.IMAP4:
    return imaplib.IMAP4("127.0.0.1", served.imap, timeout=20)


def _imaps(served: Served) -> imaplib.IMAP4:
    return imaplib.IMAP4_SSL("127.0.0.1", served.imaps, ssl_context=_client_tls(),
                             timeout=20)


def _selected(imap: imaplib.IMAP4) -> None:
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")


def _idle(imap: imaplib.IMAP4) -> None:
    _selected(imap)
    imap.send(b"I1 IDLE\r\n")
    assert imap.readline().startswith(b"+")


def _starttls(imap: imaplib.IMAP4) -> None:
    imap.starttls(_client_tls())
    _selected(imap)


def _in_literal(imap: imaplib.IMAP4) -> None:
    _selected(imap)
    imap.send(b"A1 APPEND INBOX {100}\r\n")
    assert imap.readline().startswith(b"+")
    imap.send(b"Subject: half\r\n\r\nonly part of")


def _in_authenticate(imap: imaplib.IMAP4) -> None:
    imap.send(b"X1 AUTHENTICATE PLAIN\r\n")
    assert imap.readline().startswith(b"+")


def _in_command_line(imap: imaplib.IMAP4) -> None:
    _selected(imap)
    imap.send(b"N1 NOO")


Setup = Callable[[imaplib.IMAP4], None]
CLIENTS: list[tuple[str, Callable[[Served], imaplib.IMAP4], Setup]] = [
    ("between commands", _plain, _selected),
    ("in IDLE", _plain, _idle),
    ("after STARTTLS", _plain, _starttls),
    ("implicit TLS", _imaps, _selected),
    ("implicit TLS in IDLE", _imaps, _idle),
    ("in a literal", _plain, _in_literal),
    ("answering an AUTHENTICATE challenge", _imaps, _in_authenticate),
    ("in a command line", _plain, _in_command_line),
]


def _connect_clients(served: Served, pids: list[int]) -> list[tuple[str, imaplib.IMAP4]]:
    clients = []
    for pid in pids:
        for name, connect, setup in CLIENTS:
            imap = connect_served_by(pid, functools.partial(connect, served),
                                     lambda i: i.sock, lambda i: i.logout())
            setup(imap)
            clients.append((f"{name} (pid {pid})", imap))
    return clients


def _rest(imap: imaplib.IMAP4) -> list[bytes]:
    """What the server still sends, up to the end of the connection."""
    lines = []
    try:
        while line := imap.readline():
            lines.append(line)
    except OSError:
        pass
    imap.shutdown()
    return lines


def _smtp_sessions(served: Served, home: Path) -> list[socket.socket]:
    """An MX, a submission and an LMTP (Unix socket) session, each after its
    greeting and EHLO/LHLO, waiting for a command."""
    sessions = []
    for family, address, hello in (
            (socket.AF_INET, ("127.0.0.1", served.mx), b"EHLO client.test\r\n"),
            (socket.AF_INET, ("127.0.0.1", served.submission), b"EHLO client.test\r\n"),
            (socket.AF_UNIX, str(home / "lmtp.sock"), b"LHLO client.test\r\n")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(20)
        sock.connect(address)
        file = sock.makefile("rb")
        assert file.readline().startswith(b"220")
        sock.sendall(hello)
        while not file.readline().startswith(b"250 "):
            pass
        sessions.append(sock)
    return sessions


def _stop_lines(served: Served) -> list[tuple[str, int]]:
    return [(m[1], int(m[2])) for line in served.output if (m := STOPPED.search(line))]


def _assert_clean_exit(served: Served) -> list[tuple[str, int]]:
    """Exit status 0, no traceback; returns the stop lines (role, connections)."""
    output = "".join(served.output)
    assert served.proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert "CancelledError" not in output, output
    stopped = _stop_lines(served)
    assert output.count("server:process:stopped") == len(stopped), output
    return stopped


@pytest.mark.parametrize(("processes", "sig"), [
    (1, signal.SIGTERM), (2, signal.SIGTERM), (1, signal.SIGINT)],
    ids=["one-process-sigterm", "with-worker-sigterm", "one-process-sigint"])
async def test_shutdown_tells_every_imap_client_bye_and_logs_one_stop_line(
        tmp_path: Path, processes: int, sig: signal.Signals) -> None:
    home = await _home_with_alice(tmp_path)
    served = await asyncio.to_thread(
        start_serve, home, {"LETTERLOCK_IMAP_PROCESSES": str(processes)})
    try:
        main = served.proc.pid
        workers = children(main)
        assert len(workers) == processes - 1
        clients = await asyncio.to_thread(_connect_clients, served, [main, *workers])
        sessions = await asyncio.to_thread(_smtp_sessions, served, home)
        served.proc.send_signal(sig)
        for name, imap in clients:
            rest = await asyncio.to_thread(_rest, imap)
            assert any(line.startswith(b"* BYE ") for line in rest), (name, rest)
        for sock in sessions:
            rest_smtp = await asyncio.to_thread(sock.recv, 4096)
            assert rest_smtp.startswith(b"421"), rest_smtp
            sock.close()
        await asyncio.to_thread(served.proc.wait, EXIT_WITHIN_S)
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            served.proc.wait()
    await asyncio.sleep(0.2)  # the last output lines, read by start_serve's thread
    stopped = _assert_clean_exit(served)
    roles = sorted(role for role, _n in stopped)
    assert roles == ["main"] + ["worker"] * (processes - 1), served.output
    per_process = len(CLIENTS)
    assert dict(stopped)["main"] == per_process + len(sessions), served.output
    if processes > 1:
        assert dict(stopped)["worker"] == per_process, served.output


def _fetch_without_reading(served: Served, tls: bool) -> socket.socket:
    """A client that asks for every message and reads none of the answer, with a
    small receive window, so the server's FETCH waits on a full socket."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", served.imaps if tls else served.imap))
    sock = _client_tls().wrap_socket(raw) if tls else raw
    file = sock.makefile("rb")
    assert file.readline().startswith(b"* OK")
    sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    while not file.readline().startswith(b"a OK"):
        pass
    sock.sendall(b"b SELECT INBOX\r\n")
    while not file.readline().startswith(b"b OK"):
        pass
    sock.sendall(b"c FETCH 1:* BODY[]\r\n")
    file.read(100)  # the FETCH has started
    return sock


async def test_a_client_that_stops_reading_does_not_hold_up_shutdown(
        tmp_path: Path) -> None:
    home = await _home_with_alice(tmp_path, big_messages=3)
    served = await asyncio.to_thread(start_serve, home, {"LETTERLOCK_IMAP_PROCESSES": "1"})
    try:
        stuck = [await asyncio.to_thread(_fetch_without_reading, served, tls)
                 for tls in (False, True)]
        await asyncio.sleep(0.5)  # both FETCHes fill their socket buffers
        served.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(served.proc.wait, EXIT_WITHIN_S)
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            served.proc.wait()
    for sock in stuck:
        sock.close()
    await asyncio.sleep(0.2)
    stopped = _assert_clean_exit(served)
    assert stopped == [("main", 2)], served.output
