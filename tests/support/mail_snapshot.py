"""An account's whole mail as plain data, to compare two accounts (or an account
and an IMAP server) after an export, an import or a migration: per folder, each
message's bytes, flags (without \\Recent) and internal date (UTC, whole seconds), in
UID order; and the subscribed folders."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from letterlock.app import App
from letterlock.mime import utf7
from support.env import PASSWORD

Message = tuple[bytes, frozenset[str], datetime]


@dataclass(frozen=True)
class Snapshot:
    folders: dict[str, list[Message]]
    subscribed: frozenset[str]


async def account_snapshot(app: App, address: str, password: str) -> Snapshot:
    session = await app.accounts.authenticate(address, password)
    folders: dict[str, list[Message]] = {}
    for box in await app.mailboxes.list_mailboxes(session):
        msgs = await app.mailboxes.messages(session, box.id, with_summary=False)
        bodies = await app.mailboxes.bodies(session, msgs) if msgs else {}
        folders[box.name] = [(bodies[m.uid], m.flags - {"\\Recent"},
                              m.internaldate.astimezone(UTC)) for m in msgs]
    subscribed = frozenset(await app.mailboxes.subscriptions(session))
    return Snapshot(folders, subscribed)


_FETCH = re.compile(rb'FLAGS \(([^)]*)\) INTERNALDATE "([^"]+)"')


def imap_snapshot(client: imaplib.IMAP4) -> Snapshot:
    """The same from a logged-in IMAP connection (names decoded from modified UTF-7,
    hierarchy written with /)."""
    folders: dict[str, list[Message]] = {}

    delimiter = "/"

    def names(data: list[bytes | tuple[bytes, bytes] | None]) -> list[str]:
        nonlocal delimiter
        out = []
        for line in data:
            assert isinstance(line, bytes), line
            m = re.match(rb'\(([^)]*)\) (?:"(.)"|NIL) "?([^"]*)"?$', line)
            assert m, line
            if m.group(2):
                delimiter = m.group(2).decode()
            out.append(utf7.decode(m.group(3).decode()).replace(delimiter, "/"))
        return out

    typ, listed = client.list('""', '"*"')
    assert typ == "OK"
    for name in names(listed):
        typ, count = client.select('"' + utf7.encode(name).replace("/", delimiter) + '"',
                                   readonly=True)
        assert typ == "OK", name
        msgs: list[Message] = []
        folders[name] = msgs
        if int(count[0] or 0) == 0:
            continue
        typ, data = client.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            m = _FETCH.search(item[0])
            assert m, item[0]
            flags = frozenset(m.group(1).decode().split()) - {"\\Recent"}
            when = datetime.strptime(m.group(2).decode(), "%d-%b-%Y %H:%M:%S %z")
            msgs.append((item[1], flags, when.astimezone(UTC)))
    typ, subs = client.lsub('""', '"*"')
    return Snapshot(folders, frozenset(names([s for s in subs if s is not None])))


def message(n: int, extra: bytes = b"") -> bytes:
    return (b"From: x@example.test\r\nTo: ann@example.test\r\nSubject: n" + str(n).encode()
            + b"\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\n" + extra
            + b"\r\nFrom the start\r\n>From quoted\r\nline " + str(n).encode() + b"\r\n")


FLAG_SETS: tuple[tuple[str, ...], ...] = (
    (), ("\\Seen",), ("\\Seen", "\\Answered", "$Forwarded"),
    ("\\Flagged", "\\Draft", "Work-Item", "$Label1"), ("\\Deleted", "\\Seen"))


async def seed_mail(app: App, address: str, folders: Sequence[str],
                    empty: str = "Old", *, header_only: bool = True) -> None:
    """``folders`` (``empty`` unsubscribed and left empty), and in INBOX and every
    other folder five messages with the flag sets above and internal dates out of
    order (an export must keep a folder's order, not sort it); and in INBOX a message
    of header fields alone (unless not ``header_only``: Dovecot's mbox storage gives
    such a message back with an empty body added)."""
    session = await app.accounts.authenticate(address, PASSWORD)
    ref = await app.accounts.resolve(address)
    for name in folders:
        await app.mailboxes.create_mailbox(session, name, subscribe=name != empty)
    base = datetime(2023, 5, 1, 12, 0, 0, tzinfo=UTC)
    n = 0
    for name in ("INBOX", *folders):
        if name == empty:
            continue
        for flags in FLAG_SETS:
            n += 1
            when = base - timedelta(days=n * 3 % 7, hours=n)
            await app.mailboxes.append(ref, name, message(n), flags, when)
    if header_only:
        await app.mailboxes.append(ref, "INBOX", b"Subject: header only\r\n", ("\\Seen",),
                                   base)
