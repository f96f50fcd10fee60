"""The pieces of bulk import and export every format shares: a message read from a
file (:class:`SourceMessage`), the check that it is mail at all, mbox framing (mboxrd
quoting) both ways; and the one-mbox export of every mailbox (the privacy center's
download, `mail export --format mbox`).

Whole accounts with folders, flags and subscriptions: services/mail/folder_transfer.py
(Maildir++ in maildir.py, one mbox per folder in mbox_folders.py). Export needs the
owner's session, because only the owner can unseal.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.errors import InvalidInput
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.mailbox import MailboxService
from letterlock.services.operations.log_events import LogEvent, event

_FROM_QUOTED = re.compile(rb"^>+From ")
_FIELD_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
"""A header field's first line: field-name (printable ASCII but the colon, RFC 5322
2.2), the colon after optional white space (RFC 5322 4.5.3's obsolete form)."""


@dataclass(frozen=True)
class SourceMessage:
    raw: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None
    origin: str = ""
    """Where in the source it is (a Maildir file name, the n-th message of an mbox),
    for error messages."""


def to_crlf(raw: bytes) -> bytes:
    """Canonical RFC 5322 line endings (stored form); bare CR and LF become CRLF."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def to_lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def mbox_date(from_line: bytes) -> datetime | None:
    parts = from_line.decode("ascii", "replace").split(None, 2)
    if len(parts) < 3:
        return None
    try:
        return datetime.strptime(parts[2].strip(), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_mbox(fh: BinaryIO) -> Iterator[SourceMessage]:
    """Messages of an mbox file; ``>From `` quoting is undone one level (mboxrd)."""
    current: list[bytes] | None = None
    date: datetime | None = None
    count = 0
    for line in fh:
        if line.startswith(b"From "):
            if current is not None:
                yield _finish_mbox(current, date, count)
            current, date = [], mbox_date(line.rstrip(b"\r\n"))
            count += 1
            continue
        if current is None:
            if line.strip():
                raise InvalidInput("not an mbox file: first line is not a 'From ' line")
            continue
        current.append(line[1:] if _FROM_QUOTED.match(line) else line)
    if current is not None:
        yield _finish_mbox(current, date, count)


def _finish_mbox(lines: list[bytes], date: datetime | None, number: int) -> SourceMessage:
    # The blank line before the next "From " separator belongs to the mbox format.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return SourceMessage(b"".join(lines), internaldate=date, origin=f"message {number}")


def check_message(msg: SourceMessage, source: Path) -> None:
    """Raise InvalidInput unless ``msg`` starts with an RFC 5322 header section: one
    or more header fields (continuation lines folded in) up to a blank line or the
    end. Random bytes, a PDF or plain text are refused before anything is stored."""
    header = to_crlf(msg.raw).split(b"\r\n\r\n", 1)[0]
    if header.endswith(b"\r\n"):
        header = header[:-2]  # a message of header fields alone
    lines = header.split(b"\r\n")
    where = f"{source} ({msg.origin})" if msg.origin else str(source)
    if not _FIELD_LINE.match(lines[0]):
        raise InvalidInput(f"{where} is not mail (an .eml message, an mbox file or a "
                           f"Maildir): it does not start with a header field")
    for number, line in enumerate(lines, 1):
        folded = number > 1 and line[:1] in (b" ", b"\t")
        if b"\x00" in line or not (folded or _FIELD_LINE.match(line)):
            raise InvalidInput(f"{where} is not mail: header line {number} is neither a "
                               f"header field nor its continuation")


def header_date(raw: bytes) -> datetime | None:
    """The Date: of a message (the internal date of one that comes without one)."""
    match = re.search(rb"^Date:[ \t]*(.+?)\r?$", raw.split(b"\r\n\r\n", 1)[0],
                      re.MULTILINE | re.IGNORECASE)
    if not match:
        return None
    try:
        value = parsedate_to_datetime(match.group(1).decode("ascii", "replace"))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_FROM_LINE = re.compile(rb"(?m)^(>*From )")


def mbox_entry(raw: bytes, internaldate: datetime) -> bytes:
    """One message framed for an mbox: separator line stamped with the internal date,
    the body with mboxrd quoting and LF line endings, a blank line."""
    stamp = internaldate.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
    body = _FROM_LINE.sub(rb">\1", to_lf(raw))
    tail = b"\n" if body.endswith(b"\n") else b"\n\n"
    return b"From letterlock@localhost " + stamp.encode("ascii") + b"\n" + body + tail


async def _mbox_pieces(mailboxes: MailboxService, session: Session,
                       batch: int) -> AsyncIterator[tuple[int, bytes]]:
    """(message count, bytes) for every ``batch`` messages, unsealed a batch at a time."""
    for box in await mailboxes.list_mailboxes(session):
        msgs = await mailboxes.messages(session, box.id)
        for i in range(0, len(msgs), batch):
            part = msgs[i : i + batch]
            bodies = await mailboxes.bodies(session, part)
            yield len(part), b"".join(mbox_entry(bodies[m.uid], m.internaldate) for m in part)


async def stream_mbox(mailboxes: MailboxService, session: Session,
                      batch: int = 64) -> AsyncIterator[bytes]:
    """Every mailbox as one mbox, in pieces (a web download starts at once and never
    holds the whole mailbox in memory); the same bytes :func:`export_mbox` writes."""
    async for _count, piece in _mbox_pieces(mailboxes, session, batch):
        yield piece


async def export_mbox(mailboxes: MailboxService, session: Session, out: Path,
                      batch: int = 64, *, audit: AuditSink | None = None,
                      actor: str = "operator") -> int:
    """Write every message of every mailbox to one mbox (mboxrd quoting, LF line
    endings, messages otherwise exactly as stored). Returns the count. With ``audit``,
    the export is recorded (an operator-run export with the owner's password)."""
    count = 0
    tmp = out.with_name(out.name + ".part")
    # Plaintext mail: readable by its owner alone.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        async for n, piece in _mbox_pieces(mailboxes, session, batch):
            fh.write(piece)
            count += n
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    event(LogEvent.MAIL_EXPORTED, account=session.address, format="mbox", messages=count)
    if audit is not None:
        await audit.record(AuditEvent(EventType.ADMIN_MAIL_EXPORTED, actor, datetime.now(UTC),
                                      account=session.address,
                                      details=(("messages", str(count)),)))
    return count
