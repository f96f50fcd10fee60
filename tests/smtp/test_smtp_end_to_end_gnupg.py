"""End-to-end mode against a second OpenPGP implementation: a key made by GnuPG, mail
delivered over SMTP, the stored PGP/MIME read by Python's own email parser and opened
by `gpg --decrypt`, as the owner's mail program would."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

from smtp.conftest import BOB, World
from support.env import PASSWORD

GPG = shutil.which("gpg")
pytestmark = pytest.mark.skipif(GPG is None, reason="GnuPG (gpg) is not installed")

MESSAGE = (b"From: Alice <alice@remote.test>\r\nTo: bob@example.test\r\n"
           b"Subject: GPG-SUBJECT-MARKER\r\nMessage-ID: <gpg1@remote.test>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           + "Grüße, GPG-BODY-MARKER\r\n".encode())


def gpg(home: Path, *args: str, stdin: bytes = b"") -> bytes:
    assert GPG is not None
    done = subprocess.run([GPG, "--homedir", str(home), "--batch", "--yes",
                           "--pinentry-mode", "loopback", "--passphrase", "", *args],
                          input=stdin, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


async def test_gnupg_opens_what_an_e2e_account_receives(world: World, tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        await asyncio.to_thread(gpg, home, "--quick-gen-key", "Bob <bob@example.test>",
                                "future-default", "default", "never")
        public = await asyncio.to_thread(gpg, home, "--export", "--armor", BOB)
        await world.app.accounts.set_end_to_end(BOB, PASSWORD, public)

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
                client.sendmail("alice@remote.test", [BOB], MESSAGE)

        await asyncio.to_thread(send)
        [stored] = await world.inbox(BOB)
        assert b"GPG-BODY-MARKER" not in stored and b"GPG-SUBJECT-MARKER" not in stored

        # RFC 3156 as another MIME parser sees it.
        msg = email.message_from_bytes(stored, policy=email.policy.default)
        assert msg.get_content_type() == "multipart/encrypted"
        assert msg.get_param("protocol") == "application/pgp-encrypted"
        assert msg["subject"] == "..." and msg["message-id"] == "<gpg1@remote.test>"
        control, payload = msg.iter_parts()
        assert control.get_content_type() == "application/pgp-encrypted"
        assert control.get_content().strip() == b"Version: 1"
        assert payload.get_content_type() == "application/octet-stream"

        armored = payload.get_payload(decode=True)
        assert isinstance(armored, bytes) and armored.startswith(b"-----BEGIN PGP MESSAGE")
        inner = await asyncio.to_thread(gpg, home, "--decrypt", stdin=armored)
        opened = email.message_from_bytes(inner, policy=email.policy.default)
        assert opened["subject"] == "GPG-SUBJECT-MARKER"
        assert opened.get_param("protected-headers") == "v1"
        assert opened.get_content().strip() == "Grüße, GPG-BODY-MARKER"
    finally:
        # gpg-agent started for this home: stop it, do not leave it running.
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, env={**os.environ}, timeout=30)
