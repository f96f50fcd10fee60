"""Whole-account export and import (services/mail/folder_transfer.py): Maildir++ and
one mbox per folder keep every folder, flag, keyword, internal date, subscription and
byte; what is not mail is refused before anything is stored."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.errors import InvalidInput
from letterlock.services.mail import folder_transfer, mbox_folders
from support.env import PASSWORD
from support.mail_snapshot import account_snapshot, seed_mail

ANN, BEN = "ann@example.test", "ben@example.test"
FOLDERS = ("Work", "Work/Projects", "Entwürfe", "v1.2 notes", "Old")


async def seed(app: App) -> None:
    await app.accounts.create(ANN, "us-east", PASSWORD)
    await app.accounts.create(BEN, "eu-dublin", PASSWORD)
    await seed_mail(app, ANN, FOLDERS)


def modes(root: Path) -> set[tuple[str, int]]:
    out = set()
    for top, _dirs, files in os.walk(root):
        out.add(("dir", stat.S_IMODE(os.stat(top).st_mode)))
        for name in files:
            out.add(("file", stat.S_IMODE(os.stat(os.path.join(top, name)).st_mode)))
    return out


@pytest.mark.parametrize("fmt", folder_transfer.TREE_FORMATS)
async def test_export_then_import_loses_nothing(app: App, tmp_path: Path, fmt: str) -> None:
    await seed(app)
    session = await app.accounts.authenticate(ANN, PASSWORD)
    out = tmp_path / "export"
    tree = "maildir" if fmt == "maildir" else "mbox-folders"
    counts = await folder_transfer.export_tree(app.mailboxes, session, out, tree,
                                               audit=app.audit)
    before = await account_snapshot(app, ANN, PASSWORD)
    assert counts.messages == sum(len(m) for m in before.folders.values()) == 26
    assert modes(out) == {("dir", 0o700), ("file", 0o600)}
    if fmt == "maildir":
        assert (out / ".Work.Projects" / "maildirfolder").exists()
        assert (out / ".Entw&APw-rfe").is_dir() and (out / ".v1\\2e2 notes").is_dir()
        assert (out / "subscriptions").read_bytes().startswith(b"V\t2\n\n")
    else:
        assert (out / "Work" / "Projects.mbox").is_file()
        assert (out / "Old.mbox").stat().st_size == 0

    ben = await app.accounts.resolve(BEN)
    await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, out, audit=app.audit)
    after = await account_snapshot(app, BEN, PASSWORD)
    # Ben's default folders were there before; every other folder is Ann's, whole.
    for name, msgs in before.folders.items():
        assert after.folders[name] == msgs, name
    assert set(after.folders) == set(before.folders)
    assert after.subscribed == before.subscribed
    assert "Old" not in after.subscribed and "Work/Projects" in after.subscribed


async def test_export_refuses_a_non_empty_target(app: App, tmp_path: Path) -> None:
    await seed(app)
    session = await app.accounts.authenticate(ANN, PASSWORD)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(InvalidInput, match="not an empty directory"):
        await folder_transfer.export_tree(app.mailboxes, session, tmp_path / "full",
                                          "maildir", audit=app.audit)
    assert (tmp_path / "full" / "x").read_text() == "keep"


def maildir(root: Path, folders: dict[str, dict[str, bytes]]) -> Path:
    for folder, files in folders.items():
        path = root / folder if folder else root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (path / "cur" / name).write_bytes(data)
    return root


@pytest.mark.parametrize(("layout", "complaint"), [
    ({"": {"1.a:2,S": b"Subject: ok\n\nfine\n"},
      ".Work": {"2.b:2,": os.urandom(64).replace(b":", b"!") + b"\x00"}},
     r"\.Work/cur/2\.b:2,\) is not mail"),
    ({"": {}, ".Good": {"1.a:2,S": b"Subject: ok\n\nfine\n"},
      ".Bad&Jjo": {"2.b:2,": b"Subject: ok\n\nfine\n"}},
     "not a Maildir\\+\\+ folder name"),
])
async def test_import_refuses_what_is_not_mail_and_stores_nothing(
        app: App, tmp_path: Path, layout: dict[str, dict[str, bytes]],
        complaint: str) -> None:
    await seed(app)
    ben = await app.accounts.resolve(BEN)
    before = await app.mailboxes.mailbox_names(ben)
    source = maildir(tmp_path / "Maildir", layout)
    with pytest.raises(InvalidInput, match=complaint):
        await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, source,
                                          audit=app.audit)
    assert await app.mailboxes.mailbox_names(ben) == before
    snap = await account_snapshot(app, BEN, PASSWORD)
    assert all(not msgs for msgs in snap.folders.values())


async def test_import_refuses_a_bad_keyword_file(app: App, tmp_path: Path) -> None:
    await seed(app)
    ben = await app.accounts.resolve(BEN)
    source = maildir(tmp_path / "Maildir", {"": {"1.a:2,Sa": b"Subject: ok\n\nfine\n"}})
    (source / "dovecot-keywords").write_bytes(b"0 fine\n1 (bad)\n")
    with pytest.raises(InvalidInput, match="dovecot-keywords: line 2"):
        await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, source,
                                          audit=app.audit)


async def test_a_random_file_is_refused(app: App, tmp_path: Path) -> None:
    await seed(app)
    ben = await app.accounts.resolve(BEN)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InvalidInput, match="is not mail"):
        await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, junk,
                                          audit=app.audit)
    tree = tmp_path / "tree"
    (tree / "Work").mkdir(parents=True)
    (tree / "INBOX.mbox").write_bytes(b"From x Mon Jan  1 00:00:00 2024\nSubject: a\n\nb\n")
    (tree / "Work" / "Odd.mbox").write_bytes(b"%PDF-1.7\n" + os.urandom(100))
    with pytest.raises(InvalidInput, match=r"Odd\.mbox is not an mbox file"):
        await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, tree,
                                          audit=app.audit)


async def test_dovecot_style_mbox_flags_are_read_and_taken_out(app: App,
                                                               tmp_path: Path) -> None:
    await seed(app)
    ben = await app.accounts.resolve(BEN)
    mbox = tmp_path / "saved"
    mbox.write_bytes(
        b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
        b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
        b"X-IMAP: 1700000000 0000000002 Todo\nStatus: RO\n\nfolder data\n\n"
        b"From a@b Tue Jan  2 03:04:05 2024\nSubject: one\nStatus: RO\n"
        b"X-Status: AF\nX-Keywords: Todo $Forwarded\nX-UID: 1\n\nbody one\n\n"
        b"From a@b Wed Jan  3 03:04:05 2024\nSubject: two\nStatus: O\n\n"
        b">From body two\n")
    await folder_transfer.import_tree(app.delivery, app.mailboxes, ben, mbox, "Saved",
                                      audit=app.audit)
    snap = await account_snapshot(app, BEN, PASSWORD)
    assert snap.folders["Saved"] == [
        (b"Subject: one\r\n\r\nbody one\r\n",
         frozenset({"\\Seen", "\\Answered", "\\Flagged", "Todo", "$Forwarded"}),
         datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (b"Subject: two\r\n\r\nFrom body two\r\n", frozenset(),
         datetime(2024, 1, 3, 3, 4, 5, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(("data", "messages"), [
    # Dovecot: Content-Length measures the body; From lines in it are not quoted.
    (b"From a Mon Jan  1 00:00:00 2024\nS: 1\nContent-Length: 18\n\nFrom me\n>From you\n\n"
     b"From b Mon Jan  1 00:00:00 2024\nS: 2\n\nx\n",
     [b"S: 1\nContent-Length: 18\n\nFrom me\n>From you\n", b"S: 2\n\nx\n"]),
    # A Content-Length that does not end at a From line is ignored: mboxrd.
    (b"From a Mon Jan  1 00:00:00 2024\nS: 1\nContent-Length: 3\n\nbody\n>From q\n\n"
     b"From b Mon Jan  1 00:00:00 2024\nS: 2\n\nx\n",
     [b"S: 1\nContent-Length: 3\n\nbody\nFrom q\n", b"S: 2\n\nx\n"]),
    # CRLF line ends, a message of header fields alone, an empty body.
    (b"From a Mon Jan  1 00:00:00 2024\r\nS: 1\r\n\r\nFrom b Mon Jan  1 00:00:00 2024\r\n"
     b"S: 2\r\n\r\n\r\n",
     [b"S: 1\r\n", b"S: 2\r\n\r\n"]),
])
def test_mbox_split(data: bytes, messages: list[bytes]) -> None:
    assert [raw for _line, raw in mbox_folders.split_mbox(data)] == messages
