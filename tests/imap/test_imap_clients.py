"""Real IMAP clients against the server: mbsync (isync), offlineimap, getmail6 and
Python's imaplib. Each runs as a separate process (or thread) while the server runs
on this test's event loop."""

from __future__ import annotations

import asyncio
import imaplib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from imap_script import Imap

MSG = (b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: msg %d\r\n"
       b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m%d@example.org>\r\n\r\n"
       b"Body %d\r\n")


async def _deliver(imap: Imap, count: int, start: int = 0) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    for i in range(start, start + count):
        await imap.app.mailboxes.append(ref, "INBOX", MSG % (i, i, i))


async def _run(*argv: str, timeout: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{text}"
    return text


async def _server_inbox(imap: Imap) -> list[tuple[int, frozenset[str]]]:
    session = await imap.app.accounts.authenticate(imap.user, imap.password)
    box = await imap.app.mailboxes.get_mailbox(session, "INBOX")
    return [(m.uid, m.flags) for m in await imap.app.mailboxes.messages(session, box.id)]


def _maildir_files(path: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (path / sub).glob("*") if p.is_file())


def _new_maildir_message(folder: Path, name: str, raw: bytes) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "new" / name).write_bytes(raw)


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
async def test_mbsync_two_way_sync_over_starttls(imap: Imap, tmp_path: Path,
                                                 cert_path: Path) -> None:
    await _deliver(imap, 3)
    mail = tmp_path / "mbsync-mail"
    mail.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {imap.port}
User {imap.user}
Pass "{imap.password}"
SSLType STARTTLS
CertificateFile {cert_path}

IMAPStore remote
Account test

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""")
    await _run("mbsync", "-c", str(conf), "-a")
    assert len(_maildir_files(mail / "INBOX")) == 3
    assert (mail / "Sent").is_dir() and (mail / "Trash").is_dir()
    # Local changes: a new message, and one marked seen.
    _new_maildir_message(mail / "INBOX", "1700000000.local.host", MSG % (9, 9, 9))
    first = _maildir_files(mail / "INBOX")[0]
    first.rename(first.parent.parent / "cur" / (first.name.split(":")[0] + ":2,S"))
    await _run("mbsync", "-c", str(conf), "-a")
    inbox = await _server_inbox(imap)
    assert len(inbox) == 4
    assert sum(1 for _, flags in inbox if "\\Seen" in flags) == 1
    # A server-side deletion reaches the maildir.
    session = await imap.app.accounts.authenticate(imap.user, imap.password)
    box = await imap.app.mailboxes.get_mailbox(session, "INBOX")
    await imap.app.mailboxes.expunge(session, box.id, [inbox[1][0]])
    await _run("mbsync", "-c", str(conf), "-a")
    assert len(_maildir_files(mail / "INBOX")) == 3


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="offlineimap not installed")
async def test_offlineimap_two_way_sync(imap: Imap, tmp_path: Path) -> None:
    await _deliver(imap, 2)
    mail = tmp_path / "oi-mail"
    conf = tmp_path / "offlineimaprc"
    conf.write_text(f"""[general]
accounts = test
metadata = {tmp_path}/oi-meta
ui = basic

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {mail}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {imap.port}
remoteuser = {imap.user}
remotepass = {imap.password}
ssl = no
starttls = no
folderfilter = lambda name: name in ["INBOX", "Archive"]
""")
    await _run("offlineimap", "-c", str(conf), "-o", "-u", "basic")
    assert len(_maildir_files(mail / "INBOX")) == 2
    _new_maildir_message(mail / "Archive", "1700000001.oi.host", MSG % (7, 7, 7))
    await _run("offlineimap", "-c", str(conf), "-o", "-u", "basic")
    session = await imap.app.accounts.authenticate(imap.user, imap.password)
    archive = await imap.app.mailboxes.get_mailbox(session, "Archive")
    assert archive.messages == 1


@pytest.mark.skipif(shutil.which("getmail") is None, reason="getmail6 not installed")
async def test_getmail_downloads_over_implicit_tls(imap: Imap, tmp_path: Path,
                                                   cert_path: Path) -> None:
    await _deliver(imap, 3)
    # getmail refuses to deliver as root; then it delivers as `nobody`, which needs a
    # maildir it can reach (pytest's temp directories are private to root).
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="getmail-")) if as_root else tmp_path
    base.chmod(0o755)
    maildir = base / "gm-mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
        (maildir / sub).chmod(0o777)
    user_line = "user = nobody" if as_root else ""
    rc = tmp_path / "getmailrc"
    rc.write_text(f"""[retriever]
type = SimpleIMAPSSLRetriever
server = 127.0.0.1
port = {imap.tls_port}
username = {imap.user}
password = {imap.password}
mailboxes = ("INBOX",)
ca_certs = {cert_path}

[destination]
type = Maildir
path = {maildir}/
{user_line}

[options]
read_all = true
delete = false
verbose = 0
""")
    try:
        await _run("getmail", "--rcfile", str(rc), "--getmaildir", str(tmp_path))
        files = _maildir_files(maildir)
        assert len(files) == 3
        assert all(b"Subject: msg " in f.read_bytes() for f in files)
    finally:
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


async def test_imaplib_session(imap: Imap) -> None:
    await _deliver(imap, 2)

    def client() -> None:
        m = imaplib.IMAP4("127.0.0.1", imap.port)
        m.starttls(imap.client_ssl)
        m.login(imap.user, imap.password)
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and len([d for d in data if isinstance(d, tuple)]) == 2
        typ, data = m.uid("SEARCH", None, "SUBJECT", '"msg 1"')
        assert data == [b"2"]
        typ, data = m.append("Archive", "(\\Seen)", None, MSG % (5, 5, 5))
        assert typ == "OK"
        typ, data = m.uid("MOVE", "1", "Archive")
        assert typ == "OK"
        typ, data = m.status("Archive", "(MESSAGES UNSEEN)")
        assert data == [b"Archive (MESSAGES 2 UNSEEN 1)"]
        typ, data = m.create("Folder/Sub")
        assert typ == "OK"
        typ, data = m.rename("Folder/Sub", "Folder/Other")
        assert typ == "OK"
        typ, data = m.list('""', "Folder/*")
        assert data == [b'(\\HasNoChildren) "/" Folder/Other']
        m.logout()

    await asyncio.to_thread(client)
