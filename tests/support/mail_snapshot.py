"""An account's whole mail as plain data, to compare two accounts (or an account
and an IMAP server) after an export, an import or a migration: per folder, each
message's bytes, flags (without \\Recent) and internal date (UTC, whole seconds), in
UID order; and the subscribed folders."""

from __future__ import annotations

import imaplib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from letterlock.app import App
from letterlock.mime import utf7

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
