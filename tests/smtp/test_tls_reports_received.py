"""SMTP TLS reports other servers send about ours (RFC 8460), end to end against
`letterlock serve` (with an MX worker process, so either process may take a report):
reports mailed to ``smtp.tls_report_inbox`` as multipart/report with gzipped JSON
and POSTed to /tlsrpt are stored and listed by `letterlock tls-reports`; what is not
a readable report is refused with the reason, logged, and nothing is stored."""

from __future__ import annotations

import asyncio
import gzip
import imaplib
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from smtp.serve_process import Served, start_serve
from support.cli import letterlock
from support.env import PASSWORD

INBOX = "tlsrpt@example.test"


def report(report_id: str, *, domain: str = "example.test", failures: int = 3) -> dict[str, Any]:
    """A report as another server would write it about our domain (RFC 8460 4.4)."""
    return {
        "organization-name": "Sender Org",
        "date-range": {
            "start-datetime": "2026-12-04T00:00:00Z",
            "end-datetime": "2026-12-04T23:59:59Z",
        },
        "contact-info": "tls-reporting@sender.test",
        "report-id": report_id,
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-domain": domain,
                    "policy-string": [
                        "version: STSv1",
                        "mode: testing",
                        f"mx: mx.{domain}",
                        "max_age: 86400",
                    ],
                    "mx-host": [f"mx.{domain}"],
                },
                "summary": {
                    "total-successful-session-count": 40,
                    "total-failure-session-count": failures,
                },
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "192.0.2.7",
                        "receiving-mx-hostname": f"mx.{domain}",
                        "receiving-ip": "198.51.100.25",
                        "failed-session-count": failures,
                    }
                ],
            }
        ],
    }


def report_mail(
    attachment: bytes, *, subtype: str = "tlsrpt+gzip", report_type: str = "tlsrpt"
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "tls-reporting@sender.test"
    msg["To"] = INBOX
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Subject"] = "Report Domain: example.test Submitter: mx.sender.test"
    msg["TLS-Report-Domain"] = "example.test"
    msg["TLS-Report-Submitter"] = "mx.sender.test"
    msg.set_content("An aggregate TLS report.\n")
    msg.add_attachment(
        attachment,
        maintype="application",
        subtype=subtype,
        filename="mx.sender.test!example.test!1796342400!1796428799.json.gz",
    )
    msg.set_type("multipart/report")
    msg.set_param("report-type", report_type)
    return msg.as_bytes()


def send(port: int, message: bytes, rcpts: tuple[str, ...] = (INBOX,)) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail("tls-reporting@sender.test", list(rcpts), message)  # type: ignore[return-value]


def post(port: int, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/tlsrpt",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    home = tmp_path / "home"
    letterlock(home, "init")
    server = start_serve(
        home,
        {
            "LETTERLOCK_SMTP_TLS_REPORT_INBOX": INBOX,
            "LETTERLOCK_SMTP_WORKERS": "2",
            "LETTERLOCK_IMAP_PROCESSES": "1",
        },
    )
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(30)


def gz(doc: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


async def test_mailed_and_posted_reports_are_stored_and_listed(
    served: Served, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    mailed = [report_mail(gz(report(f"mail-{i}@sender.test"))) for i in range(6)]
    results = await asyncio.gather(*(asyncio.to_thread(send, served.mx, m) for m in mailed))
    assert results == [{}] * 6
    # The same report twice is kept once.
    assert await asyncio.to_thread(send, served.mx, mailed[0]) == {}
    status, answer = await asyncio.to_thread(
        post, served.http, gz(report("posted@sender.test", failures=5)), "application/tlsrpt+gzip"
    )
    assert status == 201 and isinstance(answer["report"], int)

    listed = json.loads(
        (await asyncio.to_thread(letterlock, home, "tls-reports", "list", "--json")).stdout
    )
    assert sorted(r["report_id"] for r in listed) == sorted(
        [f"mail-{i}@sender.test" for i in range(6)] + ["posted@sender.test"]
    )
    posted = next(r for r in listed if r["report_id"] == "posted@sender.test")
    assert posted["via"] == "https" and posted["failed_sessions"] == 5
    assert posted["organization"] == "Sender Org" and posted["domains"] == ["example.test"]
    assert {r["via"] for r in listed if r is not posted} == {"smtp"}

    table = (await asyncio.to_thread(letterlock, home, "tls-reports", "list")).stdout
    assert "Sender Org" in table and "2026-12-04" in table
    shown = (
        await asyncio.to_thread(letterlock, home, "tls-reports", "show", str(posted["report"]))
    ).stdout
    assert "policy sts example.test: 40 ok, 5 failed" in shown
    assert "5 certificate-expired  (mx.example.test 198.51.100.25 192.0.2.7)" in shown
    as_sent = (
        await asyncio.to_thread(
            letterlock, home, "tls-reports", "show", str(posted["report"]), "--json"
        )
    ).stdout
    assert json.loads(as_sent) == report("posted@sender.test", failures=5)
    missing = await asyncio.to_thread(letterlock, home, "tls-reports", "show", "999", check=False)
    assert missing.returncode == 4 and "no TLS report 999" in missing.stderr
    # Not put in any mailbox: no account of that name was made or needed.
    users = (await asyncio.to_thread(letterlock, home, "user", "list", "--json")).stdout
    assert INBOX not in users


REFUSED = [
    (
        "plain mail",
        b"From: <x@sender.test>\r\nSubject: hi\r\n\r\nhello\r\n",
        "not a TLS report: Content-Type is not multipart/report",
    ),
    ("random bytes as gzip", report_mail(bytes(range(256)) * 8), "not valid gzip"),
    ("gzip of not JSON", report_mail(gzip.compress(b"<html>")), "not JSON"),
    (
        "a count that is text",
        report_mail(
            gz(
                {
                    **report("x"),
                    "policies": [
                        {
                            **report("x")["policies"][0],
                            "summary": {
                                "total-successful-session-count": "many",
                                "total-failure-session-count": 0,
                            },
                        }
                    ],
                }
            )
        ),
        "policies[0].summary.total-successful-session-count is missing or not a count",
    ),
    (
        "another domain's report",
        report_mail(gz(report("y", domain="elsewhere.test"))),
        "about no domain hosted here",
    ),
    (
        "a DMARC report",
        report_mail(gz(report("z")), subtype="gzip", report_type="dmarc"),
        "report-type=tlsrpt",
    ),
]


async def test_unreadable_reports_are_refused_with_the_reason_and_not_stored(
    served: Served, tmp_path: Path
) -> None:
    for name, message, reason in REFUSED:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await asyncio.to_thread(send, served.mx, message)
        assert refused.value.smtp_code == 550, name
        text = refused.value.smtp_error.decode()
        assert text.startswith("5.6.0 not a TLS report this server can read"), name
        assert reason in text, name
    status, answer = await asyncio.to_thread(
        post, served.http, b"\x1f\x8b garbage", "application/tlsrpt+gzip"
    )
    assert status == 400 and "not valid gzip" in answer["detail"]
    status, answer = await asyncio.to_thread(
        post, served.http, gz(report("a")), "application/octet-stream"
    )
    assert status == 400 and "is not application/tlsrpt+gzip" in answer["detail"]
    listed = await asyncio.to_thread(letterlock, tmp_path / "home", "tls-reports", "list")
    assert "no TLS reports received" in listed.stdout
    refusals = [line for line in served.output if "tls:report:refused" in line]
    assert len([r for r in refusals if "via=smtp" in r]) == len(REFUSED)
    assert len([r for r in refusals if "via=https" in r]) == 2
    # A plain-JSON report is taken too.
    status, answer = await asyncio.to_thread(
        post, served.http, json.dumps(report("b")).encode(), "application/tlsrpt+json"
    )
    assert status == 201


async def test_mail_for_the_inbox_and_an_account_reaches_the_account(
    served: Served, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    await asyncio.to_thread(
        letterlock,
        home,
        "user",
        "add",
        "ops@example.test",
        "--region",
        "us-east",
        "--password-stdin",
        stdin=f"{PASSWORD}\n",
    )
    bad = report_mail(gzip.compress(b"not json"))
    assert await asyncio.to_thread(send, served.mx, bad, (INBOX, "ops@example.test")) == {}
    listed = await asyncio.to_thread(letterlock, home, "tls-reports", "list")
    assert "no TLS reports received" in listed.stdout

    def inbox_count() -> int:
        with imaplib.IMAP4_SSL(
            "127.0.0.1", served.imaps, ssl_context=ssl._create_unverified_context()
        ) as imap:
            imap.login("ops@example.test", PASSWORD)
            _, data = imap.select("INBOX", readonly=True)
            return int(data[0] or 0)

    assert await asyncio.to_thread(inbox_count) == 1
