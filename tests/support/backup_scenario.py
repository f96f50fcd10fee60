"""The backup-under-load scenario of issue 15 point 4, for every storage a region can
have (tests/test_backup_restore.py: SQLite and files; tests/storage/
test_backup_scaleout.py: PostgreSQL and S3), on a real `letterlock serve`: mail
delivered over SMTP while `letterlock backup` runs, messages expunged meanwhile, the
region's data destroyed, then every message acknowledged before the backup read back
over IMAP with its flags, nothing of the mail readable in the backup, refusals of bad
restores, and the audit log verified with the restore in it.
"""

from __future__ import annotations

import imaplib
import json
import re
import shutil
import smtplib
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from smtp.serve_process import Served
from support import mail_scenario
from support.cli import letterlock

ALICE, BOB, PASSWORD = mail_scenario.ALICE, mail_scenario.BOB, mail_scenario.PASSWORD
RUN = uuid.uuid4().hex[:8]
_FETCHED = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


def subject(token: str) -> str:
    return f"Subj-{RUN}-{token}"


def body(token: str) -> str:
    return f"Body-{RUN}-{token}"


def message(token: str, to: str = ALICE) -> bytes:
    return (f"From: <someone@remote.test>\r\nTo: <{to}>\r\nSubject: {subject(token)}\r\n"
            f"Message-ID: <{token}.{RUN}@remote.test>\r\n\r\n{body(token)}\r\n").encode()


def deliver(served: Served, tokens: list[str], to: str = ALICE) -> None:
    with smtplib.SMTP("127.0.0.1", served.mx, timeout=30) as client:
        client.ehlo("mx.remote.test")
        for token in tokens:
            assert client.sendmail("someone@remote.test", [to], message(token, to)) == {}


def mailbox(served: Served, address: str) -> dict[str, tuple[frozenset[str], bytes]]:
    """token -> (flags, whole message) of every message in INBOX."""
    imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
    try:
        imap.login(address, PASSWORD)
        imap.select("INBOX", readonly=True)
        status, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        assert status == "OK", data
    finally:
        imap.logout()
    out: dict[str, tuple[frozenset[str], bytes]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        match = _FETCHED.search(item[0])
        assert match, item[0]
        found = re.search(rb"Subject: Subj-" + RUN.encode() + rb"-(\S+)", item[1])
        assert found, item[1][:200]
        flags = frozenset(f.decode() for f in match[2].split()) - {"\\Recent"}
        out[found[1].decode()] = (flags, item[1])
    return out


def set_flags(served: Served) -> None:
    imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
    try:
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        for criteria, flags in (("1:10", r"(\Flagged)"), ("5:15", r"(\Seen $Important)")):
            assert imap.store(criteria, "+FLAGS", flags)[0] == "OK"
    finally:
        imap.logout()


class Load:
    """Deliveries (SMTP) and expunges (IMAP) running until stopped."""

    def __init__(self, served: Served, doomed: list[str]) -> None:
        self.served = served
        self.doomed = doomed
        self.acked: list[str] = []
        self.expunged: list[str] = []
        self.errors: list[BaseException] = []
        self.started = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._deliver, self._expunge)]

    def _guard(self, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            self.started.set()

    def _deliver(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.served.mx, timeout=30) as client:
            client.ehlo("load.remote.test")
            i = 0
            while not self.stop.is_set():
                token = f"load{i:04d}"
                assert client.sendmail("someone@remote.test", [ALICE], message(token)) == {}
                self.acked.append(token)  # only once the server said 250
                if i == 3:
                    self.started.set()
                i += 1

    def _expunge(self) -> None:
        imap = imaplib.IMAP4("127.0.0.1", self.served.imap, timeout=30)
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        for token in self.doomed:
            if self.stop.is_set():
                break
            status, data = imap.uid("SEARCH", "HEADER", "Message-ID", f"{token}.{RUN}")
            assert status == "OK" and data[0], data
            uid = data[0].split()[0].decode()
            assert imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")[0] == "OK"
            assert imap.expunge()[0] == "OK"
            self.expunged.append(token)
        imap.logout()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        assert self.started.wait(60), "the load did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return letterlock(home, *args, check=False)


def files_holding(directory: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def run_scenario(tmp_path: Path, home: Path, destroy: Callable[[], None],
                 storage: str) -> None:
    """``home`` is prepared (mail_scenario.prepare); ``destroy`` removes everything
    region us-east stores; ``storage`` is the kind the manifest must name."""
    backup = tmp_path / "backup"
    served = mail_scenario.serve(home)
    try:
        before = [f"pre{i:04d}" for i in range(30)]
        deliver(served, before)
        deliver(served, ["bob0000"], to=BOB)
        set_flags(served)
        expected = mailbox(served, ALICE)
        assert set(expected) == set(before)
        doomed = before[20:26]
        # The audit log's signed head before the backup: still a prefix after the restore.
        saved_head = tmp_path / "head-before.json"
        head = run_cli(home, "log", "head", "--json")
        assert head.returncode == 0, head.stderr
        saved_head.write_text(head.stdout)
        with Load(served, doomed) as load:
            done = run_cli(home, "backup", "us-east", str(backup))
        assert not load.errors, load.errors
        assert done.returncode == 0, done.stderr
        assert load.acked, "nothing was delivered while the backup ran"
        assert "event=backup:region:started" in done.stderr
        assert "event=backup:region:finished" in done.stderr
        assert "event=admin:region:backed-up" in done.stderr
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest["storage"] == storage
        assert manifest["counts"]["messages"] >= len(before) - len(doomed)

        # A restore while the server runs is refused, and changes nothing.
        refused = run_cli(home, "restore", "us-east", str(backup), "--force")
        assert refused.returncode != 0
        assert "server is running" in refused.stderr
    finally:
        mail_scenario.stop(served)

    # Sealed: neither a subject nor a body nor the password is in the backup.
    tokens = before + load.acked + ["bob0000"]
    needles = [subject(t) for t in tokens] + [body(t) for t in tokens] + [PASSWORD]
    assert files_holding(backup, needles) == []
    control = tmp_path / "control-sample"
    control.mkdir()
    (control / "plain.eml").write_bytes(message("pre0000"))
    assert len(files_holding(control, needles)) == 2  # the check does see plaintext

    destroy()

    wrong = run_cli(home, "restore", "eu-dublin", str(backup))
    assert wrong.returncode != 0 and "a backup of region us-east" in wrong.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    blob = sorted(p for p in damaged.rglob("*") if p.is_file() and p.suffix != ".idx"
                  and p.parent.name in ("blobs", "objects"))[0]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    broken = run_cli(home, "restore", "us-east", str(damaged))
    assert broken.returncode != 0
    assert f"{blob.parent.name}/{blob.name} is damaged" in broken.stderr
    assert "event=backup:restore:refused" in broken.stderr

    restored = run_cli(home, "restore", "us-east", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "event=backup:restore:finished" in restored.stderr
    again = run_cli(home, "restore", "us-east", str(backup))
    assert again.returncode != 0 and "--force" in again.stderr
    forced = run_cli(home, "restore", "us-east", str(backup), "--force")
    assert forced.returncode == 0, forced.stderr

    served = mail_scenario.serve(home)
    try:
        after = mailbox(served, ALICE)
        # Every message acknowledged before the backup began, with its flags, except
        # those expunged while it ran (there or not, as the snapshot fell).
        for token in before:
            if token in load.expunged:
                continue
            assert token in after, f"{token} acknowledged before the backup is lost"
            assert after[token][0] == expected[token][0], token
        # Nothing that was never acknowledged; every message readable whole.
        assert set(after) <= set(before) | set(load.acked)
        for token, (_flags, raw) in after.items():
            assert body(token).encode() in raw
        assert set(mailbox(served, BOB)) == {"bob0000"}  # the other region untouched
        # New mail after the restore is stored and read back beside the old.
        deliver(served, ["post0000"])
        assert "post0000" in mailbox(served, ALICE)
    finally:
        mail_scenario.stop(served)

    verify = run_cli(home, "log", "verify", "--head", str(saved_head))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK ")
    consistent = run_cli(home, "log", "consistency", str(saved_head))
    assert consistent.returncode == 0, consistent.stderr
    events = (home / "control" / "audit" / "events.jsonl").read_text()
    assert events.count("admin:region:restored") == 2
    assert events.count("admin:region:backed-up") == 1
