"""Issue 13 point 9 for the command line, run as an operator runs it (a subprocess):
`mail import` of something that is not mail is refused with a message naming what is
wrong and stores nothing; `user recover` with a code that cannot be a recovery code
gets a clear error and a non-zero exit. Never a traceback."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from letterlock.app import open_app
from support.cli import letterlock
from support.env import FAST_KDF_ENV, PASSWORD, make_config

USER = "ann@example.test"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", USER, "--region", "us-east", "--password-stdin",
               stdin=PASSWORD + "\n")
    return home


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _stored(home: Path) -> dict[str, int]:
    """Mailbox name -> message count of the account."""
    async with open_app(make_config(home)) as app:
        session = await app.accounts.authenticate(USER, PASSWORD)
        out = {}
        for box in await app.mailboxes.list_mailboxes(session):
            out[box.name] = len(await app.mailboxes.messages(session, box.id))
        return out


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


@pytest.mark.parametrize("content", [
    _random_bytes(4096, 1), _random_bytes(100, 2), b"\x00" * 64, b"%PDF-1.7\n\xe2\xe3\xcf\xd3\n",
    b"just some text\nwith no header at all\n",
    b"From nobody Mon Jan  1 00:00:00 2024\n" + _random_bytes(2048, 3),
    b"Subject: fine\r\n" + _random_bytes(256, 5) + b"\r\n\r\nbody\r\n",
], ids=["random-4k", "random-100", "nul", "pdf", "text", "mbox-of-random", "half-header"])
async def test_import_of_random_bytes_is_refused_and_stores_nothing(
        home: Path, tmp_path: Path, content: bytes) -> None:
    before = await _stored(home)
    source = tmp_path / "junk.eml"
    source.write_bytes(content)
    proc = letterlock(home, "mail", "import", USER, str(source), "--mailbox", "Junk",
                      check=False)
    _one_line_error(proc, "junk.eml", "not")
    assert await _stored(home) == before  # not even the mailbox was created


async def test_maildir_with_a_file_that_is_no_message_stores_nothing(
        home: Path, tmp_path: Path) -> None:
    before = await _stored(home)
    maildir = tmp_path / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1:2,S").write_bytes(b"Subject: fine\r\n\r\nhello\r\n")
    (maildir / "cur" / "2:2,").write_bytes(_random_bytes(512, 4))
    proc = letterlock(home, "mail", "import", USER, str(maildir), check=False)
    _one_line_error(proc, "2:2,", "not")
    assert await _stored(home) == before


async def test_real_mail_still_imports(home: Path, tmp_path: Path) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(b"Received: from x\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\n"
                    b"Subject: caf\xc3\xa9\n\nbody \xff\n")
    mbox = tmp_path / "two.mbox"
    mbox.write_bytes(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nx\n\n"
                     b"From a@b Mon Jan  1 00:00:00 2024\nSubject: two\n\ny\n")
    letterlock(home, "mail", "import", USER, str(eml))
    letterlock(home, "mail", "import", USER, str(mbox))
    assert (await _stored(home))["INBOX"] == 3


@pytest.mark.parametrize("code", ["ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ",
                                  "é", "１２３４５", "ABCDE-\u0663\u0664"],
                         ids=["umlauts", "e-acute", "fullwidth-digits", "arabic-digits"])
def test_recover_with_non_ascii_code_is_a_clear_error(home: Path, code: str) -> None:
    proc = letterlock(home, "user", "recover", USER, stdin=f"{code}\nnew password 123\n",
                      check=False)
    _one_line_error(proc, "recovery code")


def test_recover_with_undecodable_stdin_is_a_clear_error(home: Path) -> None:
    env = {**os.environ, **FAST_KDF_ENV, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""}
    env.pop("LETTERLOCK_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "letterlock", "--home", str(home), "user",
                           "recover", USER], input=b"\xff\xfe\x80\nnew password 123\n",
                          capture_output=True, env=env, timeout=120)
    text = subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))
    _one_line_error(text, "recovery code")
