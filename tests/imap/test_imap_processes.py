"""IMAP on several processes (``imap.processes`` = 2): two sessions of one account,
served by different processes of one `letterlock serve` (told apart from /proc, see
support/connections.py), see each other's changes as if they shared a process:
flags at the next NOOP, new mail during IDLE, expunges at the next NOOP. Each runs
in both directions (main -> worker, worker -> main)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_script import Imap

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import Served, children, start_serve
from support.connections import connect_served_by
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"
DIRECTIONS = ["main-to-worker", "worker-to-main"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, int]]:
    """One serve for the module: (the serve process, its IMAP worker's pid)."""
    home = tmp_path_factory.mktemp("processes") / "home"

    async def setup() -> None:
        config = make_config(home)
        await initialise(config, InitOptions())
        async with open_app(config) as app:
            await app.accounts.create(ALICE, "us-east", PASSWORD)

    asyncio.run(setup())
    server = start_serve(home, {"LETTERLOCK_IMAP_PROCESSES": "2"})
    try:
        [worker] = children(server.proc.pid)
        yield server, worker
    finally:
        server.proc.terminate()
        server.proc.wait(30)


def session(served: tuple[Served, int], where: str) -> imaplib.IMAP4_SSL:
    """A logged-in session served by the main process or by the worker."""
    server, worker = served
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def connect() -> imaplib.IMAP4_SSL:
        imap = imaplib.IMAP4_SSL("127.0.0.1", server.imaps, ssl_context=ctx, timeout=20)
        imap.login(ALICE, PASSWORD)
        return imap

    pid = server.proc.pid if where == "main" else worker
    return connect_served_by(pid, connect, lambda c: c.sock, lambda c: c.logout())


def pair(served: tuple[Served, int], direction: str,
         box: str) -> tuple[imaplib.IMAP4_SSL, imaplib.IMAP4_SSL]:
    """(writer, reader) on different processes, both with ``box`` selected, which
    holds one message."""
    first, second = direction.split("-to-")
    writer, reader = session(served, first), session(served, second)
    assert writer.create(box)[0] == "OK"
    assert writer.append(box, None, None, b"Subject: one\r\n\r\nbody\r\n")[0] == "OK"
    assert writer.select(box)[0] == "OK"
    assert reader.select(box)[0] == "OK"
    return writer, reader


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_store_on_one_process_shows_at_the_next_noop_on_the_other(
        served: tuple[Served, int], direction: str) -> None:
    writer, reader = pair(served, direction, f"store-{direction}")
    # No pause between the writer's OK and the reader's NOOP: the news must already
    # be there (sent before OK, taken in before NOOP looks), every time.
    for i in range(20):
        op = "+FLAGS" if i % 2 == 0 else "-FLAGS"
        assert writer.store("1", op, "(\\Flagged)")[0] == "OK"
        assert reader.noop()[0] == "OK"
        _, fetched = reader.response("FETCH")
        assert fetched and fetched[-1] is not None, f"round {i}: no FETCH at NOOP"
        assert (b"\\Flagged" in fetched[-1]) == (op == "+FLAGS"), (i, fetched)
    writer.logout()
    reader.logout()


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_append_on_one_process_wakes_idle_on_the_other(
        served: tuple[Served, int], direction: str) -> None:
    writer, reader = pair(served, direction, f"idle-{direction}")
    reader.send(b"i1 IDLE\r\n")
    assert reader.readline().startswith(b"+")
    assert writer.append(f"idle-{direction}", None, None,
                         b"Subject: two\r\n\r\nbody\r\n")[0] == "OK"
    acknowledged = time.monotonic()
    reader.sock.settimeout(5)
    assert reader.readline().rstrip() == b"* 2 EXISTS"
    waited = time.monotonic() - acknowledged
    assert waited < 1.0, f"IDLE heard of the APPEND after {waited:.2f} s"
    reader.send(b"DONE\r\n")
    while not (line := reader.readline()).startswith(b"i1 "):
        pass  # RECENT (IMAP4rev1)
    assert line.startswith(b"i1 OK")
    writer.logout()
    reader.logout()


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_expunge_on_one_process_reaches_the_other_at_its_next_noop(
        served: tuple[Served, int], direction: str) -> None:
    writer, reader = pair(served, direction, f"expunge-{direction}")
    assert writer.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert writer.expunge()[0] == "OK"
    assert reader.noop()[0] == "OK"
    assert reader.response("EXPUNGE")[1] == [b"1"]
    assert reader.search(None, "ALL")[1] == [b""]
    writer.logout()
    reader.logout()


def test_the_bus_sockets_are_those_of_the_live_processes(
        served: tuple[Served, int]) -> None:
    server, worker = served
    argv = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
    home = Path(argv[argv.index(b"--home") + 1].decode())
    sockets = sorted(p.name for p in (home / "control" / "run" / "peers").iterdir())
    assert sockets == sorted([f"{server.proc.pid}.sock", f"{worker}.sock"])


async def test_news_waiting_in_the_socket_is_taken_in_before_the_answer(imap: Imap) -> None:
    """Regression guard for callback order: news another process sent before its
    client had OK can still wait, unread, in this process's socket when the next
    command is handled (it was read with earlier ones; the loop was busy). Every look
    at the mailbox drains the waiting news first."""
    app = imap.app
    c = await imap.session()
    await c.command("a1", "APPEND INBOX {9+}\r\nSubject:\r\n")
    assert (await c.command("a2", "SELECT INBOX"))[-1].startswith(b"a2 OK")
    session = await app.accounts.authenticate(imap.user, imap.password)
    box = await app.mailboxes.get_mailbox(session, "INBOX")
    # Another process changed the flags (behind this process's hub) and its news is
    # in the socket: drain() is the only way this process can hear of it.
    store = app.cells.get("us-east").store
    await store.store_flags(box.id, [1], "add", frozenset({"\\Flagged"}))
    waiting = [box.id]
    app.hub.add_drainer(lambda: [app.hub.notify_from_elsewhere(i) for i in waiting]
                        and waiting.clear())
    lines = await c.command("a3", "NOOP")
    assert any(b"FETCH" in line and b"\\Flagged" in line for line in lines), lines
    await c.close()


def test_a_new_message_is_recent_to_one_session_across_processes(
        served: tuple[Served, int]) -> None:
    """RFC 3501 2.3.2, as imaptest checks it: a message is \\Recent to one session
    only, though the sessions that see it arrive live in different processes."""
    box = "RecentBox"
    sessions = [session(served, where) for where in ("main", "worker", "main", "worker")]
    try:
        assert sessions[0].create(box)[0] == "OK"
        for s in sessions:
            assert s.select(box)[0] == "OK"
        for n in range(5):
            assert sessions[n % 4].append(box, None, None,
                                          f"Subject: {n}\r\n\r\nbody\r\n".encode())[0] == "OK"
        recent_to: dict[int, int] = {}
        for s in sessions:
            s.noop()
            typ, data = s.uid("SEARCH", "RECENT")
            assert typ == "OK"
            for uid in (data[0] or b"").split():
                recent_to[int(uid)] = recent_to.get(int(uid), 0) + 1
        assert recent_to == {uid: 1 for uid in range(1, 6)}
        # A new session (in either process) finds none of them recent any more.
        late = session(served, "worker")
        assert late.select(box)[0] == "OK"
        assert late.uid("SEARCH", "RECENT")[1] == [b""]
        late.logout()
    finally:
        for s in sessions:
            s.logout()


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_notify_hears_of_a_change_made_on_the_other_process(
        served: tuple[Served, int], direction: str) -> None:
    """NOTIFY (RFC 5465): a session with no mailbox selected and no command running is
    sent the STATUS of a mailbox another process changed, and the LIST of a mailbox
    another process created."""
    first, second = direction.split("-to-")
    writer, reader = session(served, first), session(served, second)
    box = f"notify-{direction}"
    assert writer.create(box)[0] == "OK"
    reader.send(f"n1 NOTIFY SET (MAILBOXES {box} (MessageNew MessageExpunge)) "
                "(PERSONAL (MailboxName))\r\n".encode())
    assert reader.readline().rstrip() == b"n1 OK NOTIFY completed"
    assert writer.append(box, None, None, b"Subject: two\r\n\r\nbody\r\n")[0] == "OK"
    reader.sock.settimeout(5)
    line = reader.readline().rstrip()
    assert line.startswith(f"* STATUS {box} (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ".encode())
    assert line.endswith(b" UNSEEN 1)"), line
    # A mailbox created there: told at once too (the account's list key).
    assert writer.create(f"{box}-new")[0] == "OK"
    assert reader.readline().rstrip() == f'* LIST () "/" {box}-new'.encode()
    writer.logout()
    reader.logout()
