"""A full mbsync sync of a 10,000-message mailbox (slow: run with -m slow)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from imap_script import Imap

COUNT = 10_000


def _message(i: int) -> bytes:
    return (f"From: Sender {i} <s{i}@example.org>\r\nTo: alice@example.test\r\n"
            f"Subject: bulk {i}\r\nMessage-ID: <{i}.bulk@example.org>\r\n\r\n"
            f"Body of message {i}\r\n").encode()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
async def test_mbsync_full_sync_of_ten_thousand_messages(imap: Imap, tmp_path: Path) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    box = await imap.app.mailboxes.mailbox_for_delivery(ref, "INBOX")
    for start in range(0, COUNT, 500):
        batch = [await imap.app.mailboxes.seal_message(ref, _message(i), box)
                 for i in range(start, min(COUNT, start + 500))]
        await imap.app.mailboxes.append_sealed(ref, batch)
    mail = tmp_path / "mail"
    mail.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {imap.port}
User {imap.user}
Pass "{imap.password}"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX

Channel sync
Far :remote:INBOX
Near :local:INBOX
Create Near
SyncState *
Sync Pull
""")
    proc = await asyncio.create_subprocess_exec(
        "mbsync", "-c", str(conf), "-a", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, out.decode(errors="replace")
    files = [p for sub in ("cur", "new") for p in (mail / "INBOX" / sub).iterdir()]
    assert len(files) == COUNT
    subjects = {f.read_bytes().split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for f in files}
    assert len(subjects) == COUNT
