"""The spam filter: a real rspamd (tests/support/rspamd.py, skipped visibly where the
Debian package is missing), the MX listener acting on its verdicts (smtplib), and
learning from the owner moving mail into and out of Junk over IMAP (imaplib), wired
by the real composition root (``[spam] rspamd = on``)."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import logging
import shutil
import smtplib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.config import SmtpConfig, SpamConfig
from letterlock.imap.server import ImapServer
from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail.rspamd import SpamFilter
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.smtp.server import SmtpServer
from smtp.conftest import ALICE, server_tls
from smtp.serve_process import start_serve
from support.env import PASSWORD, make_config
from support.rspamd import GTUBE, GTUBE_ADD_HEADER, GTUBE_REWRITE_SUBJECT, Rspamd, running_rspamd


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    with running_rspamd(tmp_path_factory.mktemp("rspamd")) as server:
        yield server


@pytest.fixture
def config(home: Path, rspamd: Rspamd) -> config_mod.Config:
    return dataclasses.replace(make_config(home), spam=SpamConfig(
        rspamd="on", rspamd_url=rspamd.url, rspamd_controller_url=rspamd.controller_url))


@pytest.fixture
async def mx(accounts: App, tmp_path: Path) -> AsyncIterator[int]:
    # SPF/DKIM/DMARC off: this file is about rspamd (tests/smtp/test_dmarc.py is not).
    server = SmtpServer(accounts.delivery, accounts.accounts, None,
                        SmtpConfig(port=0, submission_port=0, sender_checks=False),
                        "mx.example.test", server_tls(tmp_path), lmtp=False,
                        spam=SpamFilter.from_config(accounts.config.spam))
    ports = await server.start()
    try:
        yield ports.mx
    finally:
        await server.close()


def message(body: str, mid: str = "m1", extra: str = "") -> bytes:
    # Dated now: an old Date: would add to rspamd's score as the years pass.
    return (f"From: Carol <carol@remote.test>\r\nTo: {ALICE}\r\nSubject: Lunch\r\n"
            f"Date: {formatdate()}\r\nMessage-ID: <{mid}@remote.test>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


def send(port: int, msg: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("carol@remote.test", [ALICE], msg)


async def folder(app: App, name: str) -> list[bytes]:
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    box = await app.mailboxes.get_mailbox(session, name)
    msgs = await app.mailboxes.messages(session, box.id)
    bodies = await app.mailboxes.bodies(session, msgs)
    return [bodies[m.uid] for m in msgs]


def spam_status(stored: bytes) -> list[bytes]:
    return [f.raw for f in split_fields(stored[:header_end(stored)])
            if f.key == "x-spam-status"]


def events(caplog: pytest.LogCaptureFixture, name: LogEvent) -> list[dict[str, object]]:
    return [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) is name]


async def test_gtube_is_refused_and_a_normal_message_delivered(
        accounts: App, mx: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    await asyncio.to_thread(send, mx, message("Shall we have lunch on Thursday?"))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, mx, message(GTUBE, mid="m2"))
    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    [stored] = await folder(accounts, "INBOX")
    [status] = spam_status(stored)
    assert status.startswith(b"X-Spam-Status: No, score=") and b"action=no_action" in status
    assert await folder(accounts, "Junk") == []
    checked = events(caplog, LogEvent.SPAM_CHECKED)
    assert [(e["action"], e["taken"]) for e in checked] == [("no action", "deliver"),
                                                             ("reject", "reject")]


async def test_add_header_and_rewrite_subject_go_to_junk(accounts: App, mx: int) -> None:
    # The sender's own verdict is not kept: only rspamd's.
    forged = "X-Spam-Status: No, score=-100\r\n"
    await asyncio.to_thread(send, mx, message(GTUBE_ADD_HEADER, extra=forged))
    await asyncio.to_thread(send, mx, message(GTUBE_REWRITE_SUBJECT, mid="m2"))
    assert await folder(accounts, "INBOX") == []
    added, rewritten = await folder(accounts, "Junk")
    [status] = spam_status(added)
    assert status.startswith(b"X-Spam-Status: Yes,") and b"action=add_header" in status
    assert b"tests=GTUBE" in status
    assert b"action=rewrite_subject" in spam_status(rewritten)[0]


async def test_junk_delivery_finds_a_renamed_junk_or_makes_one(accounts: App,
                                                               mx: int) -> None:
    session = await accounts.accounts.authenticate(ALICE, PASSWORD)
    await accounts.mailboxes.rename_mailbox(session, "Junk", "Spam")  # keeps \Junk
    await asyncio.to_thread(send, mx, message(GTUBE_ADD_HEADER))
    assert len(await folder(accounts, "Spam")) == 1
    await accounts.mailboxes.delete_mailbox(session, "Spam")
    await asyncio.to_thread(send, mx, message(GTUBE_ADD_HEADER, mid="m2"))
    [made] = [b for b in await accounts.mailboxes.list_mailboxes(session) if b.name == "Junk"]
    assert made.special_use == "\\Junk" and len(await folder(accounts, "Junk")) == 1


async def test_soft_reject_defers(accounts: App, mx: int) -> None:
    # The test rspamd answers "soft reject" (its greylisting's answer) without a
    # Message-ID (tests/support/rspamd.py).
    no_id = message("Hello").replace(b"Message-ID: <m1@remote.test>\r\n", b"")
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        await asyncio.to_thread(send, mx, no_id)
    assert deferred.value.smtp_code == 451 and deferred.value.smtp_error.startswith(b"4.7.1")
    assert await folder(accounts, "INBOX") == []


async def learned(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, object]]:
    """The first ``count`` spam:message:learned lines, waiting for the background
    learning to finish (bounded: a learner that never reports fails the test)."""
    for _ in range(600):
        lines = events(caplog, LogEvent.SPAM_LEARNED)
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {events(caplog, LogEvent.SPAM_LEARNED)} learned")


async def test_moving_into_and_out_of_junk_teaches_rspamd(
        accounts: App, rspamd: Rspamd, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    ref = await accounts.accounts.resolve_for_delivery(ALICE)
    await accounts.delivery.deliver(message("Cheap watches", mid="learn-spam-1"), [ref])
    await accounts.delivery.deliver(message("See you at noon", mid="learn-ham-1"), [ref])
    server = ImapServer(accounts.accounts, accounts.mailboxes, accounts.config.imap, None)
    await server.start("127.0.0.1", 0, 0)
    assert server.port is not None

    def client_session() -> None:
        imap = imaplib.IMAP4("127.0.0.1", server.port)
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        assert imap.uid("MOVE", "1", "Junk")[0] == "OK"  # a mail program's "Junk" button
        imap.select("Junk")
        assert imap.uid("COPY", "1:*", "Trash")[0] == "OK"  # to Trash: nothing learned
        # "Not junk": the message goes back to INBOX.
        assert imap.uid("MOVE", "1:*", "INBOX")[0] == "OK"
        # Thunderbird filing a message from another account into this Junk.
        other = message("Win a prize", mid="learn-spam-2").replace(b"\r\n", b"\n")
        assert imap.append("Junk", "($Junk)", None, other)[0] == "OK"
        imap.logout()

    try:
        await asyncio.to_thread(client_session)
        lines = await learned(caplog, 3)
    finally:
        await server.close()
    # Learning runs beside the session, two at a time: the order may vary.
    assert sorted((str(e["learn"]), e["messages"]) for e in lines) == [
        ("ham", 1), ("spam", 1), ("spam", 1)]
    assert all(e["account"] == ALICE for e in lines)
    # Each reached rspamd: its controller logged every message by Message-ID (without
    # Redis it declines to store what it learns, and says so).
    log = rspamd.log_text()
    assert log.count("<learn-spam-1@remote.test>") >= 2  # as spam, then as ham
    assert "<learn-spam-2@remote.test>" in log
    assert all(e.get("declined") or e.get("learned") for e in lines)


def test_serve_with_rspamd_as_docs_say(rspamd: Rspamd, tmp_path: Path) -> None:
    """docs/operating.md's letterlock.toml, `letterlock serve`, swaks as the sending
    server and imaplib as the mail program."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (.ci/run installs it)")
    home = tmp_path / "served"
    home.mkdir()
    (home / "letterlock.toml").write_text(
        "[smtp]\nsender_checks = false\n\n[spam]\nrspamd = \"on\"\n"
        f"rspamd_url = \"{rspamd.url}\"\nrspamd_controller_url = \"{rspamd.controller_url}\"\n"
        "timeout_s = 10\n")
    served = start_serve(home, args=("--demo",))
    try:
        def swaks(body: str, mid: str) -> str:
            return subprocess.run(
                ["swaks", "--server", f"127.0.0.1:{served.mx}", "--to", ALICE,
                 "--from", "carol@remote.test", "--header", f"Message-Id: <{mid}@remote.test>",
                 "--body", body], capture_output=True, text=True, timeout=60).stdout

        assert "250 2.0.0 OK queued as" in swaks("Lunch on Thursday?", "served-1")
        assert "550 5.7.1 Message refused as spam" in swaks(GTUBE, "served-2")
        client = imaplib.IMAP4("127.0.0.1", served.imap)
        client.login(ALICE, "letterlock-demo")
        client.select("INBOX")
        uid = client.uid("SEARCH", "HEADER", "Message-Id", "served-1")[1][0].split()[-1]
        fetched = client.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (X-SPAM-STATUS)])")[1]
        assert b"X-Spam-Status: No," in fetched[0][1]  # type: ignore[index]
        assert client.uid("MOVE", uid, "Junk")[0] == "OK"
        client.logout()
        for _ in range(600):  # learning is in the background: wait for its line
            if any("event=spam:message:learned" in line for line in served.output):
                break
            time.sleep(0.05)
    finally:
        served.proc.terminate()
        served.proc.wait(timeout=30)
    lines = "".join(served.output)
    assert "event=spam:message:checked action=reject score=15 taken=reject" in lines
    assert "event=spam:message:learned" in lines and "learn=spam messages=1" in lines
    assert "<served-1@remote.test>" in rspamd.log_text()
