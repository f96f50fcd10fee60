"""NOTIFY (RFC 5465) over real sockets: a session that set NOTIFY is told of changes
made by deliveries and by other sessions without sending any command."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
from imap_script import Imap, ScriptClient

from letterlock.imap.commands import notify

MSG = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


async def _deliver(imap: Imap, mailbox: str) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, mailbox, MSG)


async def _session(imap: Imap, select: str | None = None) -> ScriptClient:
    """A logged-in IMAP4rev2 session (no \\Recent), with ``select`` selected."""
    c = await imap.session()
    assert (await c.command("e", "ENABLE IMAP4rev2"))[-1].startswith(b"e OK")
    if select is not None:
        assert (await c.command("s", f"SELECT {select}"))[-1].startswith(b"s OK")
    return c


def _status(line: bytes, modseq: bool = False) -> bytes:
    """A STATUS response without its UIDVALIDITY item, which must be there (and
    without HIGHESTMODSEQ, which must be there with ``modseq``)."""
    plain, n = re.subn(rb" UIDVALIDITY \d+", b"", line.rstrip(b"\r\n"))
    assert n == 1 or not line.startswith(b"* STATUS "), line
    if modseq:
        plain, n = re.subn(rb" HIGHESTMODSEQ \d+", b"", plain)
        assert n == 1 or not line.startswith(b"* STATUS "), line
    return plain


async def _quiet(c: ScriptClient) -> list[bytes]:
    """Proves nothing unsolicited is pending: a NOOP's responses (without its tag)."""
    return (await c.command("q", "NOOP"))[:-1]


async def test_status_of_other_mailbox_and_exists_arrive_unsolicited(imap: Imap) -> None:
    c = await _session(imap, "INBOX")
    assert b" NOTIFY" in (await c.command("a0", "CAPABILITY"))[0]
    assert (await c.command("a1", "CREATE Lists"))[-1].startswith(b"a1 OK")
    lines = await c.command(
        "a2", "NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
              " (PERSONAL (MessageNew MessageExpunge FlagChange))")
    # STATUS of every other mailbox first (the default ones too), not of the selected.
    assert b"* STATUS Lists (MESSAGES 0 UIDNEXT 1 UNSEEN 0)" in [_status(x, True) for x in lines]
    assert not any(b"STATUS INBOX" in line for line in lines)
    assert lines[-1] == b"a2 OK NOTIFY completed"
    # Another mailbox changes: a STATUS, with no command from the client (with
    # HIGHESTMODSEQ: FlagChange was asked for, RFC 5465 5.1).
    await _deliver(imap, "Lists")
    assert _status(await c.response(), True) == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    # The selected mailbox: EXISTS, then the FETCH that MessageNew asked for.
    await _deliver(imap, "INBOX")
    assert (await c.response()).rstrip() == b"* 1 EXISTS"
    assert (await c.response()).rstrip() == b"* 1 FETCH (UID 1 FLAGS ())"
    # A second session reads the message in the other mailbox, then expunges it.
    other = await _session(imap, "Lists")
    assert (await other.command("b1", "STORE 1 +FLAGS (\\Seen)"))[-1].startswith(b"b1 OK")
    assert _status(await c.response(), True) == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 0)"
    await other.command("b2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    await other.command("b3", "EXPUNGE")
    # (The \Deleted flag alone may be told first: HIGHESTMODSEQ changed.)
    line = _status(await c.response(), True)
    if line == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 0)":
        line = _status(await c.response(), True)
    assert line == b"* STATUS Lists (MESSAGES 0 UIDNEXT 2 UNSEEN 0)"
    await other.close()
    assert await _quiet(c) == []
    await c.close()


async def test_flag_change_and_expunge_in_selected_mailbox(imap: Imap) -> None:
    await _deliver(imap, "INBOX")
    c = await _session(imap, "INBOX")
    lines = await c.command(
        "a1", "NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))")
    assert lines == [b"a1 OK NOTIFY completed"]
    other = await _session(imap, "INBOX")
    await other.command("b1", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert (await c.response()).rstrip() == b"* 1 FETCH (FLAGS (\\Flagged))"
    await other.command("b2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert (await c.response()).rstrip() == b"* 1 FETCH (FLAGS (\\Deleted \\Flagged))"
    await other.command("b3", "EXPUNGE")
    assert (await c.response()).rstrip() == b"* 1 EXPUNGE"
    await other.close()
    await c.close()


async def test_none_stops_notifications(imap: Imap) -> None:
    c = await _session(imap)
    assert (await c.command("a0", "CREATE Other"))[-1].startswith(b"a0 OK")
    await c.command("a1", "NOTIFY SET (MAILBOXES Other (MessageNew MessageExpunge))")
    await _deliver(imap, "Other")
    assert _status(await c.response()) == b"* STATUS Other (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    assert await c.command("a2", "NOTIFY NONE") == [b"a2 OK NOTIFY completed"]
    await _deliver(imap, "Other")
    await _deliver(imap, "INBOX")
    assert await _quiet(c) == []
    # STATUS as the client asks shows the change it was not told of.
    lines = await c.command("a3", "STATUS Other (MESSAGES)")
    assert lines[0] == b"* STATUS Other (MESSAGES 2)"  # (asked without UIDVALIDITY)
    await c.close()


async def test_filters_choose_mailboxes(imap: Imap) -> None:
    c = await _session(imap)
    for i, name in enumerate(("Lists", "Lists/a", "Work", "Sub")):
        assert (await c.command(f"c{i}", f"CREATE {name}"))[-1].startswith(b"c")
    await c.command("s1", "SUBSCRIBE Sub")
    lines = await c.command(
        "a1", "NOTIFY SET STATUS (INBOXES NONE) (SUBTREE Lists (MessageNew MessageExpunge))"
              " (SUBSCRIBED (MessageNew MessageExpunge))")
    told = {line.split(b" (")[0] for line in lines[:-1]}
    assert {b"* STATUS Lists", b"* STATUS Lists/a", b"* STATUS Sub"} <= told
    assert b"* STATUS Work" not in told and b"* STATUS INBOX" not in told
    assert lines[-1] == b"a1 OK NOTIFY completed"
    await _deliver(imap, "Work")  # matched by no filter
    await _deliver(imap, "INBOX")  # INBOXES with no events
    await _deliver(imap, "Lists/a")
    assert _status(await c.response()) == \
        b"* STATUS Lists/a (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    await _deliver(imap, "Sub")
    assert _status(await c.response()) == b"* STATUS Sub (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    assert await _quiet(c) == []
    await c.close()


async def test_mailbox_name_changes_by_another_session(imap: Imap) -> None:
    c = await _session(imap)
    await c.command("a0", "CREATE Old")
    await c.command("a1", "CREATE Doomed")
    await c.command("a2", "NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
    other = await _session(imap)
    await other.command("b1", "RENAME Old New")
    assert (await c.response()).rstrip() == b'* LIST () "/" New ("OLDNAME" (Old))'
    await other.command("b2", "DELETE Doomed")
    assert (await c.response()).rstrip() == b'* LIST (\\NonExistent) "/" Doomed'
    await other.command("b3", "CREATE Fresh")
    assert (await c.response()).rstrip() == b'* LIST () "/" Fresh'
    await other.command("b4", "SUBSCRIBE New")
    assert (await c.response()).rstrip() == b'* LIST (\\Subscribed) "/" New'
    await other.command("b5", "UNSUBSCRIBE New")
    assert (await c.response()).rstrip() == b'* LIST () "/" New'
    await other.close()
    # This session's own changes are told too (as Dovecot does; RFC 5465 5 only
    # says SHOULD NOT).
    await c.command("a3", "SUBSCRIBE Fresh")
    assert await _quiet(c) == [b'* LIST (\\Subscribed) "/" Fresh']
    await c.close()


async def test_unsupported_and_malformed(imap: Imap) -> None:
    c = await _session(imap)
    lines = await c.command("a1", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge "
                                  "AnnotationChange))")
    assert lines == [b"a1 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
                     b"SubscriptionChange)] Event AnnotationChange is not supported"]
    lines = await c.command("a2", "NOTIFY SET (PERSONAL (MailboxMetadataChange))")
    assert lines[-1].startswith(b"a2 NO [BADEVENT ")
    for i, bad in enumerate((
            "NOTIFY SET (PERSONAL (MessageNew (FLAGS) MessageExpunge))",  # fetch-att
            "NOTIFY SET (NOWHERE (MessageNew MessageExpunge))",
            "NOTIFY SET",
            "NOTIFY MAYBE")):
        lines = await c.command(f"b{i}", bad)
        assert lines[-1].startswith(f"b{i} BAD".encode()), (bad, lines)
    # Nothing was set by the refused commands.
    await _deliver(imap, "INBOX")
    assert await _quiet(c) == []
    await c.close()


async def test_idle_with_notify_reports_other_mailboxes(imap: Imap) -> None:
    c = await _session(imap, "INBOX")
    await c.command("a0", "CREATE Lists")
    await c.command("a1", "NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
                          "(PERSONAL (MessageNew MessageExpunge))")
    c.send(b"a2 IDLE")
    assert (await c.response()).startswith(b"+ ")
    await _deliver(imap, "Lists")
    assert _status(await c.response()) == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    await _deliver(imap, "INBOX")
    assert (await c.response()).rstrip() == b"* 1 EXISTS"
    c.send(b"DONE")
    assert (await c.until("a2"))[-1] == b"a2 OK IDLE terminated"
    await c.close()


async def test_nothing_is_sent_in_the_middle_of_a_command(imap: Imap) -> None:
    c = await _session(imap)
    await c.command("a0", "CREATE Lists")
    await c.command("a1", "CREATE Work")
    await c.command("a2", "NOTIFY SET (MAILBOXES Lists (MessageNew MessageExpunge))")
    c.send(b"a3 APPEND Work {%d}" % len(MSG))
    assert (await c.response()).startswith(b"+ ")
    await _deliver(imap, "Lists")  # while the client owes the literal
    # Give the server every chance to (wrongly) write the STATUS now: it would clear
    # its wake-up event in doing so.
    [conn] = list(imap.server._connections)
    assert conn.ctx.notifier is not None
    for _ in range(20):
        await asyncio.sleep(0.01)
        if not conn.ctx.notifier.wake.is_set():
            break
    c.writer.write(MSG + b"\r\n")
    assert (await c.response()).startswith(b"a3 OK [APPENDUID ")
    assert _status(await c.response()) == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    await c.close()


async def test_fetch_attributes_and_condstore(imap: Imap) -> None:
    c = await _session(imap, "INBOX")
    await c.command("a0", "CREATE Lists")
    await c.command("a1", "ENABLE CONDSTORE")
    await c.command("a2", "NOTIFY SET (SELECTED (MessageNew (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
                          " MessageExpunge)) (MAILBOXES Lists (MessageNew MessageExpunge))")
    await _deliver(imap, "INBOX")
    assert (await c.response()).rstrip() == b"* 1 EXISTS"
    fetched = await c.response()
    assert fetched.startswith(b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {")
    assert b"Subject: hello" in fetched and b"MODSEQ (" in fetched
    await _deliver(imap, "Lists")
    line = _status(await c.response())
    assert re.fullmatch(rb"\* STATUS Lists \(MESSAGES 1 UIDNEXT 2 UNSEEN 1 "
                        rb"HIGHESTMODSEQ \d+\)", line), line
    # The fetch used BODY.PEEK: the message is still unseen.
    assert (await c.command("a3", "FETCH 1 FLAGS"))[0].startswith(b"* 1 FETCH (FLAGS () ")
    await c.close()


async def test_without_a_selected_group_the_selected_mailbox_waits_for_a_command(
        imap: Imap) -> None:
    """RFC 5465 3.1: no SELECTED group is SELECTED NONE. The selected mailbox is
    brought up to date by the next command, as without NOTIFY, and never gets a
    STATUS although PERSONAL covers it."""
    c = await _session(imap, "INBOX")
    await c.command("a0", "CREATE Lists")
    await c.command("a1", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
    await _deliver(imap, "INBOX")
    await _deliver(imap, "Lists")
    assert _status(await c.response()) == b"* STATUS Lists (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
    assert await _quiet(c) == [b"* 1 EXISTS"]
    await c.close()


async def test_a_client_that_stops_reading_gets_overflow(
        imap: Imap, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 5465 5.8: NOTIFY is switched off for a client that does not read what it
    is sent, with OK [NOTIFICATIONOVERFLOW]. Small socket buffers and a small
    threshold (1 MiB in service) keep the test short; 2000-byte mailbox names make
    each STATUS large."""
    monkeypatch.setattr(notify, "OVERFLOW_BYTES", 8192)
    name = "L" * 2000
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.ensure_mailbox(ref, name)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", imap.port))
    # A small limit: the stream stops taking data from the socket at twice that.
    reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
    c = ScriptClient(reader, writer)
    assert (await c.response()).startswith(b"* OK")
    await c.login(imap.user, imap.password)
    [conn] = list(imap.server._connections)
    conn.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                    4096)
    lines = await c.command("a1", f"NOTIFY SET (MAILBOXES {name} (MessageNew MessageExpunge))")
    assert lines == [b"a1 OK NOTIFY completed"]
    for _ in range(500):  # the client reads nothing meanwhile
        await imap.app.mailboxes.append(ref, name, MSG)
        for _ in range(100):
            await asyncio.sleep(0.001)  # lets the server deliver
            notifier = conn.ctx.notifier
            if notifier is None or not notifier.wake.is_set():
                break
        if conn.ctx.notifier is None:
            break
    assert conn.ctx.notifier is None, "NOTIFY was never switched off"
    told = []
    while not told or not told[-1].startswith(b"* OK [NOTIFICATIONOVERFLOW]"):
        told.append(await c.response())
    assert all(line.startswith(b"* STATUS ") for line in told[:-1])
    # Nothing more is sent unasked; the session goes on.
    await imap.app.mailboxes.append(ref, name, MSG)
    assert await c.command("a2", "NOOP") == [b"a2 OK NOOP completed"]
    await c.close()


async def test_selected_delayed_keeps_expunges_for_a_command(imap: Imap) -> None:
    await _deliver(imap, "INBOX")
    c = await _session(imap, "INBOX")
    await c.command("a0", "CREATE Lists")
    await c.command("a1", "NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))"
                          " (MAILBOXES Lists (MessageNew MessageExpunge))")
    other = await _session(imap, "INBOX")
    assert (await other.command("b1", "STORE 1 +FLAGS.SILENT (\\Deleted)"))[-1] \
        .startswith(b"b1 OK")
    assert (await other.command("b2", "EXPUNGE"))[-1].startswith(b"b2 OK")
    await other.close()
    await _deliver(imap, "Lists")
    told = [await c.response()]
    while not told[-1].startswith(b"* STATUS Lists "):
        told.append(await c.response())
    assert not any(b"EXPUNGE" in line for line in told), told
    assert b"* 1 EXPUNGE" in await _quiet(c)
    await c.close()
