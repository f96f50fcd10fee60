"""letterlock -> Dovecot -> letterlock loses nothing (issue 15 point 6): folders
(nested, non-ASCII), every flag and keyword, internal dates, subscriptions and the
bytes of every message, both with `letterlock mail migrate` (IMAP to IMAP, over
implicit TLS, STARTTLS and plaintext, resumed by a second run) and with `mail export
--format maildir` handed to Dovecot as a user's Maildir and `mail import` of the
Maildir Dovecot then keeps. A real Dovecot (tests/support/dovecot.py), the real
letterlock IMAP server and the real command in a subprocess."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.imap.server import ImapServer
from letterlock.services.accounts.certificates import make_self_signed
from support.cli import letterlock
from support.dovecot import MBOX, Dovecot, User, require_dovecot, running_dovecot
from support.env import PASSWORD
from support.mail_snapshot import Snapshot, account_snapshot, imap_snapshot, seed_mail

ANN, CAROL, ERIN = "ann@example.test", "carol@example.test", "erin@example.test"
FOLDERS = ("Work", "Work/Projects", "Entwürfe", "Old")
DOVE_PW = "dove secret"


@pytest.fixture
async def imap_server(app: App, tmp_path: Path) -> AsyncIterator[tuple[ImapServer, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ImapServer(app.accounts, app.mailboxes, app.config.imap, context)
    await server.start("127.0.0.1", 0, 0)
    try:
        yield server, cert
    finally:
        await server.close()


def dovecot_snapshot(dovecot: Dovecot, user: str) -> Snapshot:
    client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    try:
        client.login(user, DOVE_PW)
        return imap_snapshot(client)
    finally:
        client.logout()


async def migrate(home: Path, source: str, target: str, state: Path, *extra: str) -> str:
    proc = await asyncio.to_thread(
        letterlock, home, "mail", "migrate", source, target, "--state", str(state), *extra,
        stdin=f"{PASSWORD if 'example.test' in source else DOVE_PW}\n"
              f"{PASSWORD if 'example.test' in target else DOVE_PW}\n")
    assert "Traceback" not in proc.stderr
    assert "Subject" not in proc.stderr and "line 1" not in proc.stderr
    return proc.stdout + proc.stderr


def same_mail(got: Snapshot, want: Snapshot) -> None:
    assert sorted(got.folders) == sorted(want.folders)
    for name, msgs in want.folders.items():
        assert got.folders[name] == msgs, name
    assert got.subscribed == want.subscribed


async def test_migrate_to_dovecot_and_back_loses_nothing(
        app: App, home: Path, tmp_path: Path, imap_server: tuple[ImapServer, Path]) -> None:
    require_dovecot()
    server, cert = imap_server
    for address in (ANN, CAROL):
        await app.accounts.create(address, "us-east", PASSWORD)
    await seed_mail(app, ANN, FOLDERS)
    want = await account_snapshot(app, ANN, PASSWORD)
    with running_dovecot([User("ann", DOVE_PW)]) as dovecot:
        # letterlock (implicit TLS, its certificate trusted) -> Dovecot (plaintext).
        out = await migrate(home, f"imaps://ann%40example.test@localhost:{server.tls_port}",
                            f"imap://ann@127.0.0.1:{dovecot.imap_port}",
                            tmp_path / "out.state", "--cafile", str(cert))
        assert "migrated 10 folder(s): 21 message(s) copied" in out, out
        assert "migration:account:finished" in out and "copied=21" in out
        same_mail(dovecot_snapshot(dovecot, "ann"), want)

        # Dovecot (implicit TLS) -> letterlock (STARTTLS) into another account.
        back = (f"imaps://ann@127.0.0.1:{dovecot.imaps_port}",
                f"imap+starttls://carol%40example.test@localhost:{server.port}")
        state = tmp_path / "back.state"
        out = await migrate(home, *back, state, "--insecure")
        assert "21 message(s) copied" in out, out
        same_mail(await account_snapshot(app, CAROL, PASSWORD), want)

        # New mail at Dovecot: a second run copies it alone.
        client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
        client.login("ann", DOVE_PW)
        late = b"Subject: late\r\n\r\narrived after the first run\r\n"
        client.append('"Work.Projects"', "(\\Seen NewOne)", '"02-Mar-2024 10:11:12 +0000"',
                      late)
        client.logout()
        out = await migrate(home, *back, state, "--insecure")
        assert "1 message(s) copied, 21 copied before" in out, out
        now = await account_snapshot(app, CAROL, PASSWORD)
        assert now.folders["Work/Projects"] == [
            *want.folders["Work/Projects"],
            (late, frozenset({"\\Seen", "NewOne"}), datetime(2024, 3, 2, 10, 11, 12, tzinfo=UTC))]
        out = await migrate(home, *back, state, "--insecure")
        assert "0 message(s) copied, 22 copied before" in out, out


async def test_maildir_export_is_read_by_dovecot_and_comes_back(
        app: App, home: Path, tmp_path: Path) -> None:
    require_dovecot()
    for address in (ANN, ERIN):
        await app.accounts.create(address, "us-east", PASSWORD)
    await seed_mail(app, ANN, FOLDERS)
    want = await account_snapshot(app, ANN, PASSWORD)
    export = tmp_path / "export"
    proc = await asyncio.to_thread(letterlock, home, "mail", "export", ANN, "--format",
                                   "maildir", "--out", str(export), "--password-stdin",
                                   stdin=PASSWORD + "\n")
    assert "exported 21 message(s) in 10 folder(s)" in proc.stdout
    with running_dovecot([User("dan", DOVE_PW)]) as dovecot:
        shutil.rmtree(dovecot.maildir("dan"), ignore_errors=True)
        shutil.copytree(export, dovecot.maildir("dan"))
        dovecot.adopt(dovecot.home("dan"))
        same_mail(dovecot_snapshot(dovecot, "dan"), want)

        # Dovecot now keeps that Maildir (its index and uidlist files are there); a
        # keyword set through Dovecot goes into its file name and dovecot-keywords.
        client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
        client.login("dan", DOVE_PW)
        client.select("INBOX")
        assert client.store("1", "+FLAGS", "(SetAtDovecot)")[0] == "OK"
        client.logout()
        proc = await asyncio.to_thread(letterlock, home, "mail", "import", ERIN,
                                       str(dovecot.maildir("dan")))
    assert "imported 21 message(s) in 10 folder(s)" in proc.stdout
    first, *rest = want.folders["INBOX"]
    want.folders["INBOX"] = [(first[0], first[1] | {"SetAtDovecot"}, first[2]), *rest]
    same_mail(await account_snapshot(app, ERIN, PASSWORD), want)


async def test_dovecot_mbox_files_come_in_with_their_flags(
        app: App, home: Path, imap_server: tuple[ImapServer, Path], tmp_path: Path) -> None:
    """Dovecot's mbox layout (a file per folder, flags in Status:/X-Status:/
    X-Keywords:, its X-UID/X-IMAPbase/Content-Length fields, .subscriptions), filled
    by `mail migrate`, read back by `mail import`. mbox folders cannot hold both mail
    and subfolders, so this account's folders are flat."""
    require_dovecot()
    server, _cert = imap_server
    for address in (ANN, ERIN):
        await app.accounts.create(address, "us-east", PASSWORD)
    await seed_mail(app, ANN, ("Work", "Entwürfe", "Old"), header_only=False)
    want = await account_snapshot(app, ANN, PASSWORD)
    with running_dovecot([User("ann", DOVE_PW)], MBOX) as dovecot:
        await migrate(home, f"imap://ann%40example.test@127.0.0.1:{server.port}",
                      f"imap://ann@127.0.0.1:{dovecot.imap_port}", tmp_path / "s")
        same_mail(dovecot_snapshot(dovecot, "ann"), want)
        mail_root = dovecot.home("ann") / "mail"
        assert b"X-Keywords:" in (mail_root / "Work").read_bytes()
        proc = await asyncio.to_thread(letterlock, home, "mail", "import", ERIN,
                                       str(mail_root))
    assert "in 9 folder(s)" in proc.stdout, proc.stdout
    same_mail(await account_snapshot(app, ERIN, PASSWORD), want)
