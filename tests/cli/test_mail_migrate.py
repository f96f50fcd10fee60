"""`letterlock mail migrate` between two letterlock accounts (no Dovecot needed):
resuming, a folder whose UIDVALIDITY changed, and the errors an operator meets (a
wrong password, a bad URL, another migration's state file, a server that is not
there); `mail export` writes plaintext 0600 and says so."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.imap.server import ImapServer
from letterlock.services.mail import imap_migration
from support.cli import letterlock
from support.env import PASSWORD
from support.mail_snapshot import account_snapshot, message, seed_mail

ANN, CAROL = "ann@example.test", "carol@example.test"


@pytest.fixture
async def server(app: App) -> AsyncIterator[ImapServer]:
    for address in (ANN, CAROL):
        await app.accounts.create(address, "us-east", PASSWORD)
    await seed_mail(app, ANN, ("Work", "Old"))
    imap = ImapServer(app.accounts, app.mailboxes, app.config.imap, None)
    await imap.start("127.0.0.1", 0, None)
    try:
        yield imap
    finally:
        await imap.close()


def urls(server: ImapServer, source: str = ANN) -> tuple[str, str]:
    return (f"imap://{source.replace('@', '%40')}@127.0.0.1:{server.port}",
            f"imap://carol%40example.test@127.0.0.1:{server.port}")


async def run(home: Path, *args: str, stdin: str = f"{PASSWORD}\n{PASSWORD}\n",
              ) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.to_thread(letterlock, home, "mail", *args, stdin=stdin, check=False)
    assert "Traceback" not in proc.stderr
    return proc


async def test_a_folder_made_anew_is_copied_anew(app: App, home: Path, tmp_path: Path,
                                                server: ImapServer) -> None:
    state = tmp_path / "state.json"
    proc = await run(home, "migrate", *urls(server), "--state", str(state))
    assert proc.returncode == 0, proc.stderr
    assert "11 message(s) copied" in proc.stdout
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # Work deleted and made again: same name, new UIDVALIDITY, its UIDs start over.
    session = await app.accounts.authenticate(ANN, PASSWORD)
    await app.mailboxes.delete_mailbox(session, "Work")
    await app.mailboxes.create_mailbox(session, "Work")
    await app.mailboxes.append(await app.accounts.resolve(ANN), "Work", message(99))
    proc = await run(home, "migrate", *urls(server), "--state", str(state))
    assert "  Work: 1 copied, 0 already there" in proc.stdout, proc.stdout
    assert "1 message(s) copied" in proc.stdout
    carol = await account_snapshot(app, CAROL, PASSWORD)
    assert [m[0] for m in carol.folders["Work"]][-1] == message(99)
    assert len(carol.folders["Work"]) == 6


@pytest.mark.parametrize(("args", "stdin", "code", "complaint"), [
    ((), f"wrong\n{PASSWORD}\n", 6, "login as ann@example.test failed"),
    (("--source", "http://x@host"), None, 2, "the scheme must be imaps://"),
    (("--source", "imap://127.0.0.1:1"), None, 2, "expected SCHEME://USER@HOST"),
    (("--source", "imap://ann@127.0.0.1:{closed}"), None, 7, "cannot connect to"),
    ((), "only one line\n", 2, "line 2 missing"),
])
async def test_migration_errors_are_one_clear_line(
        home: Path, tmp_path: Path, server: ImapServer, args: tuple[str, ...],
        stdin: str | None, code: int, complaint: str) -> None:
    source, target = urls(server)
    if args:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        source = args[1].format(closed=closed)
    proc = await run(home, "migrate", source, target, "--state", str(tmp_path / "s"),
                     stdin=stdin or f"{PASSWORD}\n{PASSWORD}\n")
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert complaint in proc.stderr
    assert "wrong" not in proc.stderr.replace("wrong password", "")


async def test_a_foreign_or_damaged_state_file_is_refused(home: Path, tmp_path: Path,
                                                          server: ImapServer) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(bytes(range(256)))
    proc = await run(home, "migrate", *urls(server), "--state", str(state))
    assert proc.returncode == 2 and "is not a migration state file" in proc.stderr
    state.write_text(json.dumps({"version": 1, "source": "someone@else:143",
                                 "target": "x@y:143", "folders": {}}))
    proc = await run(home, "migrate", *urls(server), "--state", str(state))
    assert proc.returncode == 2 and "is the state of another migration" in proc.stderr


async def test_export_is_plaintext_for_the_owner_alone(home: Path, tmp_path: Path,
                                                       server: ImapServer) -> None:
    help_text = (await run(home, "export", "--help")).stdout
    assert "PLAINTEXT" in help_text and "0600" in help_text
    for fmt in ("mbox", "maildir", "mbox-folders"):
        out = tmp_path / fmt
        proc = await run(home, "export", ANN, "--format", fmt, "--out", str(out),
                         "--password-stdin", stdin=PASSWORD + "\n")
        assert proc.returncode == 0, proc.stderr
        assert "plaintext" in proc.stdout
        assert "mail:export:finished" in proc.stderr and "messages=11" in proc.stderr
        paths = [out] if fmt == "mbox" else [out, *out.rglob("*")]
        assert {stat.S_IMODE(p.stat().st_mode) for p in paths} <= {0o600, 0o700}


async def test_a_run_cut_short_goes_on_after_the_last_copied_uid(
        app: App, home: Path, tmp_path: Path, server: ImapServer) -> None:
    # The state a run leaves when it stops after INBOX's third message.
    session = await app.accounts.authenticate(ANN, PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    uids = [m.uid for m in await app.mailboxes.messages(session, inbox.id)]
    source, target = urls(server)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({
        "version": 1, "source": f"{ANN}@127.0.0.1:{server.port}",
        "target": f"{CAROL}@127.0.0.1:{server.port}",
        "folders": {"INBOX": {"uidvalidity": inbox.uidvalidity, "last_uid": uids[2]}}}))
    proc = await run(home, "migrate", source, target, "--state", str(state))
    assert proc.returncode == 0, proc.stderr
    assert "  INBOX: 3 copied, 3 already there" in proc.stdout
    carol = await account_snapshot(app, CAROL, PASSWORD)
    ann = await account_snapshot(app, ANN, PASSWORD)
    assert carol.folders["INBOX"] == ann.folders["INBOX"][3:]
    assert carol.folders["Work"] == ann.folders["Work"]
    saved = json.loads(state.read_text())["folders"]
    assert saved["INBOX"] == {"uidvalidity": inbox.uidvalidity, "last_uid": uids[-1]}


def test_fetches_are_bounded_in_count_and_bytes() -> None:
    mib = 1024 * 1024
    pending = [(1, 10 * mib), (2, 10 * mib), (3, 10 * mib), (4, 90 * mib), (5, 1)]
    pending += [(uid, 10) for uid in range(6, 50)]
    batches = list(imap_migration._batches(pending))
    assert batches[:3] == [[1, 2, 3], [4], [5, *range(6, 25)]]
    assert [u for b in batches for u in b] == [u for u, _ in pending]
    assert all(len(b) <= imap_migration.FETCH_BATCH for b in batches)
