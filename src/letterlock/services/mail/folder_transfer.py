"""A whole account out and in: every folder with its messages' flags, keywords and
internal dates, and the subscriptions, as a Maildir++ tree (services/mail/maildir.py)
or as one mbox per folder (services/mail/mbox_folders.py).

Export needs the owner's session (only the owner can unseal) and writes **plaintext**
(files 0600, directories 0700, into a ``.part`` directory renamed when complete).
Import needs no password (delivery only seals) and reads the source twice: once to
check every folder name, keyword and message (:func:`transfer.check_message`), so
that bad input is refused before anything is stored, and once to store it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.errors import InvalidInput
from letterlock.services.accounts.accounts import AccountRef, Session
from letterlock.services.mail import maildir, mbox_folders
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.mailbox import SYSTEM_FLAGS, MailboxService
from letterlock.services.mail.mailbox_folders import check_mailbox_name
from letterlock.services.mail.transfer import SourceMessage, check_message, header_date, to_crlf
from letterlock.services.operations.log_events import LogEvent, event

TreeFormat = Literal["maildir", "mbox-folders"]
TREE_FORMATS: tuple[TreeFormat, ...] = ("maildir", "mbox-folders")


@dataclass(frozen=True)
class Counts:
    folders: int
    messages: int


class _FolderOut(Protocol):
    def add(self, raw: bytes, flags: frozenset[str], internaldate: datetime) -> None: ...
    def close(self) -> None: ...


class _TreeOut(Protocol):
    def folder(self, name: str) -> _FolderOut: ...
    def write_subscriptions(self, names: Sequence[str]) -> None: ...


class _FolderIn(Protocol):
    @property
    def name(self) -> str: ...
    def messages(self) -> Iterator[SourceMessage]: ...


# -- export -----------------------------------------------------------------------------

def _stored_flags(flags: frozenset[str]) -> frozenset[str]:
    return frozenset(f for f in flags if not f.startswith("\\") or f.lower() in SYSTEM_FLAGS)


async def export_tree(mailboxes: MailboxService, session: Session, out: Path,
                      fmt: TreeFormat, batch: int = 64, *, audit: AuditSink,
                      actor: str = "operator") -> Counts:
    """Write every mailbox of ``session``'s account under ``out`` (which must not
    exist, or be an empty directory). The files hold plaintext mail."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty directory")
    part = out.with_name(out.name + ".part")
    if part.exists():
        raise InvalidInput(f"{part} exists (an export that did not finish?): remove it")
    writer: _TreeOut = (maildir.MaildirWriter(part, int(time.time())) if fmt == "maildir"
                        else mbox_folders.MboxTreeWriter(part))
    boxes = sorted(await mailboxes.list_mailboxes(session),
                   key=lambda b: (b.name != "INBOX", b.name))
    count = 0
    try:
        for box in boxes:
            folder = writer.folder(box.name)
            msgs = await mailboxes.messages(session, box.id, with_summary=False)
            for i in range(0, len(msgs), batch):
                chunk = msgs[i : i + batch]
                bodies = await mailboxes.bodies(session, chunk)
                for m in chunk:
                    folder.add(bodies[m.uid], _stored_flags(m.flags), m.internaldate)
            folder.close()
            count += len(msgs)
        writer.write_subscriptions(await mailboxes.subscriptions(session))
        if out.exists():
            out.rmdir()
        os.replace(part, out)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    counts = Counts(len(boxes), count)
    event(LogEvent.MAIL_EXPORTED, account=session.address, format=fmt,
          folders=counts.folders, messages=counts.messages)
    await audit.record(AuditEvent(EventType.ADMIN_MAIL_EXPORTED, actor, datetime.now(UTC),
                                  account=session.address,
                                  details=(("format", fmt), ("folders", str(counts.folders)),
                                           ("messages", str(count)))))
    return counts


# -- import -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Single:
    """A lone .eml or mbox file, as one folder."""

    name: str
    path: Path

    def messages(self) -> Iterator[SourceMessage]:
        with open(self.path, "rb") as fh:
            head = fh.read(5)
        if head == b"From ":
            yield from mbox_folders.read_mbox_file(self.path)
            return
        data = self.path.read_bytes()
        if not data.strip():
            raise InvalidInput(f"{self.path} is empty")
        yield SourceMessage(data)


@dataclass(frozen=True)
class Source:
    kind: str
    """maildir, mbox-folders, mbox or eml (for messages and the log)."""
    folders: list[_FolderIn]
    subscriptions: list[str] | None


def open_source(path: Path, mailbox: str | None = None) -> Source:
    """The folders of ``path``: a Maildir++ tree, a directory of mbox files, one mbox
    file or one .eml file. With ``mailbox``, a lone file goes there (default INBOX)
    and a tree's INBOX goes there, its other folders below it."""
    if path.is_dir():
        found: list[_FolderIn]
        if maildir.is_maildir(path):
            kind, (dirs, subs) = "maildir", maildir.read_tree(path)
            found = list(dirs)
        elif mbox_folders.is_mbox_tree(path):
            kind, (files, subs) = "mbox-folders", mbox_folders.read_tree(path)
            found = list(files)
        else:
            raise InvalidInput(f"{path} is a directory but neither a Maildir (no cur/ or "
                               f"new/) nor a tree of .mbox files")
        if mailbox is not None:
            prefix = check_mailbox_name(mailbox)
            found = [_Renamed(_below(prefix, f.name), f) for f in found]
            subs = None if subs is None else [_below(prefix, n) for n in subs]
        return Source(kind, found, subs)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    with open(path, "rb") as fh:
        kind = "mbox" if fh.read(5) == b"From " else "eml"
    return Source(kind, [_Single(mailbox or "INBOX", path)], None)


def _below(prefix: str, name: str) -> str:
    return prefix if name == "INBOX" else f"{prefix}/{name}"


@dataclass(frozen=True)
class _Renamed:
    name: str
    inner: _FolderIn

    def messages(self) -> Iterator[SourceMessage]:
        return self.inner.messages()


def check_source(source: Source, path: Path) -> Counts:
    """Read all of ``source``; raise InvalidInput at the first thing that is not
    mail (a message, a folder name, a keyword); return what it holds."""
    messages = 0
    for folder in source.folders:
        try:
            check_mailbox_name(folder.name)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: folder {folder.name!r}: {exc}") from None
        for msg in folder.messages():
            check_message(msg, path)
            messages += 1
    for name in source.subscriptions or ():
        try:
            check_mailbox_name(name)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: subscriptions: {exc}") from None
    return Counts(len(source.folders), messages)


async def import_tree(delivery: DeliveryService, mailboxes: MailboxService, ref: AccountRef,
                      path: Path, mailbox: str | None = None, batch: int = 64, *,
                      audit: AuditSink, actor: str = "operator") -> Counts:
    """Store every folder of ``path`` (see :func:`open_source`) in ``ref``'s account,
    messages with their flags and internal dates, in their order. Folders it creates
    are subscribed as the source's subscriptions say (subscribed when it has none);
    existing ones get new messages after theirs. Raises InvalidInput, having stored
    nothing, if anything of the source is not mail."""
    source = open_source(path, mailbox)
    check_source(source, path)
    existing = await mailboxes.mailbox_names(ref)
    subscribed = None if source.subscriptions is None else set(source.subscriptions)
    count = 0
    for folder in source.folders:
        name = check_mailbox_name(folder.name)
        box = await mailboxes.ensure_mailbox(ref, name)
        if subscribed is not None and name not in existing:
            await mailboxes.set_subscribed(ref, name, name in subscribed)
        existing.add(name)
        pending: list[tuple[bytes, frozenset[str], datetime | None]] = []
        for msg in folder.messages():
            raw = to_crlf(msg.raw)
            when = msg.internaldate or header_date(raw)
            pending.append((raw, frozenset(msg.flags),
                            when.replace(microsecond=0) if when else None))
            if len(pending) >= batch:
                count += await delivery.deliver_batch(ref, box.id, pending)
                pending = []
        if pending:
            count += await delivery.deliver_batch(ref, box.id, pending)
    for name in sorted(subscribed or ()):
        await mailboxes.set_subscribed(ref, name, True)
    counts = Counts(len(source.folders), count)
    event(LogEvent.MAIL_IMPORTED, account=ref.address, format=source.kind,
          folders=counts.folders, messages=counts.messages)
    await audit.record(AuditEvent(EventType.ADMIN_MAIL_IMPORTED, actor, datetime.now(UTC),
                                  account=ref.address,
                                  details=(("format", source.kind),
                                           ("folders", str(counts.folders)),
                                           ("messages", str(count)))))
    return counts
