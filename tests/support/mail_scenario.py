"""A mail scenario against a real `letterlock serve` (tests/smtp/serve_process.py),
shared by the tests of what an operator watches and handles: accounts with a known
password, an MX delivery, a submission (with a failed AUTH first) that leaves a
message in the outbound queue (its smarthost does not answer), IMAP and HTTP logins,
an admin action."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import Served, free_ports, start_serve
from support.env import make_config

ALICE = "alice@example.test"  # us-east
BOB = "bob@example.test"  # eu-dublin
FOREIGN = "carol@elsewhere.test"
SUBJECT = "Subject-Canary-7d1f"
BODY = "Body-Canary-93ab4e"
PASSWORD = "Password-Canary-5e2c"
WRONG = "Wrong-Canary-8c4d11"


def prepare(home: Path) -> None:
    async def setup() -> None:
        config = make_config(home)
        await initialise(config, InitOptions())
        async with open_app(config) as app:
            await app.accounts.create(ALICE, "us-east", PASSWORD)
            await app.accounts.create(BOB, "eu-dublin", PASSWORD)
            await app.operators.add("root", "admin", PASSWORD)

    asyncio.run(setup())


def serve(home: Path, **env: str) -> Served:
    (closed,) = free_ports(1)  # the smarthost nobody listens on: outbound mail waits
    return start_serve(home, {"LETTERLOCK_SMTP_SENDER_CHECKS": "0",
                              "LETTERLOCK_SMTP_SMARTHOST": f"127.0.0.1:{closed}",
                              **{f"LETTERLOCK_{k.upper()}": v for k, v in env.items()}})


def stop(served: Served) -> list[str]:
    served.proc.terminate()
    served.proc.wait(60)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "server:process:stopped" not in \
            "".join(served.output[-3:]):
        time.sleep(0.05)
    return [line.rstrip("\n") for line in served.output]


BANNER = ("letterlock is running", "Stop with Ctrl-C.", "  ")
"""What `serve` prints on stdout (the log lines are on stderr, the same pipe here)."""
_RECORD_START = re.compile(r'(?=ts=\d{4}-)|(?=\{"ts":)')
_LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?: |$)')


def records(output: list[str], fmt: str) -> list[dict[str, str]]:
    """Every log line of the output as a record. Raises AssertionError for a line
    that is neither a whole record nor the banner (stdout and stderr of several
    processes share the pipe: a banner line and a log line may be glued)."""
    out = []
    for line in output:
        for piece in (p for p in _RECORD_START.split(line.rstrip("\n")) if p):
            if piece.startswith(BANNER):
                continue
            if fmt == "json":
                out.append({k: str(v) for k, v in json.loads(piece).items()})
                continue
            matches = list(_LOGFMT.finditer(piece))
            assert "".join(m.group(0) for m in matches) == piece, f"not logfmt: {piece!r}"
            out.append({m.group(1): json.loads(m.group(2)) if m.group(2).startswith('"')
                        else m.group(2) for m in matches})
    return out


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def message(to: str) -> bytes:
    return (f"From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: {SUBJECT}\r\n\r\n{BODY}\r\n"
            ).encode()


def mx_delivery(served: Served) -> None:
    with smtplib.SMTP("127.0.0.1", served.mx, timeout=30) as client:
        client.ehlo("mx.remote.test")
        client.mail("someone@remote.test")
        assert client.rcpt(ALICE)[0] == 250
        assert client.rcpt(BOB)[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550  # a rejection
        assert client.data(message(ALICE))[0] == 250


def submission(served: Served) -> None:
    with smtplib.SMTP("127.0.0.1", served.submission, timeout=30) as client:
        client.starttls(context=tls())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(ALICE, WRONG)
    with smtplib.SMTP("127.0.0.1", served.submission, timeout=30) as client:
        client.starttls(context=tls())
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(ALICE, [BOB, FOREIGN], message(BOB))
        assert refused == {}


def imap(served: Served) -> None:
    imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, WRONG)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BODY[])")
    assert BODY.encode() in data[0][1]  # type: ignore[index]
    imap.logout()


def http(served: Served) -> None:
    def get(password: str) -> int:
        token = base64.b64encode(f"{ALICE}:{password}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{served.http}/api/me",
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert get(WRONG) == 401
    assert get(PASSWORD) == 200


def admin_action(served: Served) -> None:
    token = base64.b64encode(f"root:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http}/api/operators", method="POST",
        data=json.dumps({"name": "lee", "role": "legal", "password": PASSWORD}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def wait_for(served: Served, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in served.output):
        assert time.monotonic() < deadline, f"no {text!r} in\n" + "".join(served.output)
        time.sleep(0.05)
