"""SMTP TLS reports we send (RFC 8460), end to end: mail to two domains with MTA-STS
policies (DNS and the policy over HTTPS on loopback, as tests/smtp/test_mta_sts.py
does), one MX whose certificate the test CA issued and one whose certificate nobody
trusts; then the daily job, a day later, finds each domain's ``_smtp._tls`` record,
queues the report mail through the same outbound queue to the rua address's MX and
POSTs it to the https rua; the report's JSON is checked against RFC 8460's
structure, independently of the server's own reader."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import logging
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from letterlock.app import App
from letterlock.config import SmtpConfig
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.mta_sts import MtaSts, StsSettings
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.operations.log_events import LogEvent
from letterlock.services.operations.tls_reports import (
    TlsReporting,
    TlsResults,
    dns_txt,
    https_poster,
)
from letterlock.storage.tls_reports_sqlite import TlsReportStore
from smtp.test_smtp_outbound import free_port, submit, submitting_through
from support.cli import letterlock
from support.dns_server import dns_server
from support.test_ca import TestCa

POLICIES = {
    "mta-sts.other.test": "version: STSv1\r\nmode: enforce\r\nmx: mx1.other.test\r\n"
    "max_age: 86400\r\n",
    "mta-sts.third.test": "version: STSv1\r\nmode: testing\r\nmx: mx1.third.test\r\n"
    "max_age: 86400\r\n",
}
ZONE = {
    ("_mta-sts.other.test.", "TXT"): ['"v=STSv1; id=1"'],
    ("mta-sts.other.test.", "A"): ["127.0.0.1"],
    ("_mta-sts.third.test.", "TXT"): ['"v=STSv1; id=1"'],
    ("mta-sts.third.test.", "A"): ["127.0.0.1"],
    ("_smtp._tls.other.test.", "TXT"): [
        '"v=TLSRPTv1; rua=mailto:tls-reports@reports.test,https://rua.reports.test/tlsrpt"'
    ],
    ("_smtp._tls.third.test.", "TXT"): ['"v=TLSRPTv1;rua=mailto:tls-reports@reports.test"'],
}
RESULT_TYPES = {
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
}
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def assert_rfc8460_report(doc: Any) -> None:
    """The report's structure as RFC 8460 4.4 lays it out (written from the RFC, not
    from the server's reader)."""
    assert isinstance(doc, dict)
    assert {"organization-name", "date-range", "contact-info", "report-id", "policies"} <= set(doc)
    for key in ("organization-name", "contact-info", "report-id"):
        assert isinstance(doc[key], str) and doc[key]
    assert set(doc["date-range"]) == {"start-datetime", "end-datetime"}
    assert all(DATE_TIME.fullmatch(v) for v in doc["date-range"].values())
    assert isinstance(doc["policies"], list) and doc["policies"]
    for entry in doc["policies"]:
        pol = entry["policy"]
        assert pol["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert isinstance(pol["policy-domain"], str)
        for key in ("policy-string", "mx-host"):
            assert all(isinstance(s, str) for s in pol.get(key, []))
        summary = entry["summary"]
        assert set(summary) == {"total-successful-session-count", "total-failure-session-count"}
        assert all(isinstance(v, int) and v >= 0 for v in summary.values())
        details = entry.get("failure-details", [])
        assert (
            sum(d["failed-session-count"] for d in details)
            == summary["total-failure-session-count"]
        )
        for d in details:
            assert d["result-type"] in RESULT_TYPES
            assert isinstance(d["failed-session-count"], int)
            assert set(d) <= {
                "result-type",
                "sending-mta-ip",
                "receiving-mx-hostname",
                "receiving-mx-helo",
                "receiving-ip",
                "failed-session-count",
                "additional-information",
                "failure-reason-code",
            }


@dataclass
class Posted:
    port: int = 0
    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(path, content type, body) of each POST."""


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def https_server(ca: TestCa) -> Iterator[Posted]:
    """One HTTPS server on loopback for both MTA-STS policies (by Host) and the
    https rua (POST), with a certificate the test CA issued for all three names."""
    posted = Posted()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            host = self.headers.get("Host", "")
            body = POLICIES.get(host, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posted.bodies.append((self.path, self.headers.get("Content-Type", ""), data))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ca.server_context(
        "mta-sts.other.test", "mta-sts.third.test", "rua.reports.test"
    ).wrap_socket(server.socket, server_side=True)
    posted.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield posted
    finally:
        server.shutdown()
        server.server_close()


class Receiver:
    """Every MX of the test on one port: the certificate shown is chosen by the name
    the client asks for (SNI)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.delivered.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"


def receiving_context(
    by_name: dict[str, ssl.SSLContext], default: ssl.SSLContext
) -> ssl.SSLContext:
    def choose(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name in by_name:
            sock.context = by_name[name]

    default.sni_callback = choose
    return default


async def test_daily_report_counts_a_trusted_and_an_untrusted_mx_and_goes_to_the_rua(
    accounts: App,
    tmp_path: Path,
    ca: TestCa,
    https_server: Posted,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    stranger = TestCa(tmp_path / "stranger")  # issued a certificate nobody trusts
    receiver = Receiver()
    port = free_port()
    tls = receiving_context(
        {
            "mx1.other.test": ca.server_context("mx1.other.test"),
            "mx1.third.test": stranger.server_context("mx1.third.test"),
        },
        ca.server_context("mx.reports.test"),
    )
    controller = Controller(receiver, hostname="127.0.0.1", port=port, tls_context=tls)
    controller.start()
    home = accounts.config.home
    reporting = TlsReporting(
        SmtpConfig(tls_report_from="postmaster@example.test"),
        accounts.config.control_dir,
        "mx.example.test",
        accounts.delivery,
    )
    assert reporting.results is not None and reporting.intake is None

    async def loopback(host: str) -> str:
        return "127.0.0.1"

    async def mx(domain: str) -> list[str]:
        return ["mx.reports.test" if domain == "reports.test" else f"mx1.{domain}"]

    try:
        async with dns_server(ZONE) as resolver:
            sts = MtaSts(
                resolver,
                StsSettings(tls_context=ca.client_context(), https_port=https_server.port),
                on_failure=reporting.results.policy_failure,
            )
            settings = OutboundSettings(
                hostname="mx.example.test",
                port=port,
                retry_base_s=0.2,
                retry_max_s=0.5,
                timeout_s=5,
                tls_context=ca.client_context(),
            )
            queue = OutboundQueue(
                home,
                accounts.delivery,
                accounts.accounts,
                DkimKeys(accounts.config.control_dir),
                settings,
                mx_lookup=mx,
                mta_sts=sts,
                address_lookup=loopback,
                tls_results=reporting.results,
            )
            async with submitting_through(accounts, tmp_path, queue) as world:
                rcpts = ["carol@other.test", "dave@third.test"]
                assert await asyncio.to_thread(submit, world, rcpts) == {}
                await queue.wait_until(lambda entries: not entries)
                assert sorted(r for rs, _ in receiver.delivered for r in rs) == rcpts

                tomorrow = datetime.now(UTC) + timedelta(days=1)
                post = https_poster(ca.client_context(), address=loopback)

                async def post_to_test_server(url: str, body: bytes) -> None:
                    await post(
                        url.replace("rua.reports.test", f"rua.reports.test:{https_server.port}"),
                        body,
                    )

                reporter = reporting.reporter(
                    queue, txt=dns_txt(resolver), https=post_to_test_server, clock=lambda: tomorrow
                )
                assert await reporter.run() == 2
                await queue.wait_until(lambda entries: not entries)
                assert await reporter.run() == 0  # each day once
    finally:
        controller.stop()
        await reporting.close(queue)

    reports = {}
    for rcpts, raw in receiver.delivered:
        if rcpts != ["tls-reports@reports.test"]:
            continue
        msg = message_from_bytes(raw, policy=policy.default)
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "tlsrpt"
        assert msg["TLS-Report-Submitter"] == "mx.example.test"
        assert msg["From"] == "postmaster@example.test"
        [part] = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
        assert str(part.get_filename()).startswith(f"mx.example.test!{msg['TLS-Report-Domain']}!")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        doc = json.loads(gzip.decompress(payload))
        assert_rfc8460_report(doc)
        reports[str(msg["TLS-Report-Domain"])] = doc
        assert b"carol" not in raw and b"dave" not in raw and b"alice" not in raw
    assert sorted(reports) == ["other.test", "third.test"]

    [good] = reports["other.test"]["policies"]
    assert good["policy"]["policy-type"] == "sts"
    assert good["policy"]["mx-host"] == ["mx1.other.test"]
    assert "mode: enforce" in good["policy"]["policy-string"]
    assert good["summary"] == {
        "total-successful-session-count": 1,
        "total-failure-session-count": 0,
    }
    [bad] = reports["third.test"]["policies"]
    assert bad["summary"] == {"total-successful-session-count": 0, "total-failure-session-count": 1}
    assert bad["failure-details"] == [
        {
            "result-type": "certificate-not-trusted",
            "failed-session-count": 1,
            "sending-mta-ip": "127.0.0.1",
            "receiving-mx-hostname": "mx1.third.test",
            "receiving-ip": "127.0.0.1",
        }
    ]
    day = (datetime.now(UTC)).date()
    assert reports["third.test"]["date-range"] == {
        "start-datetime": f"{day.isoformat()}T00:00:00Z",
        "end-datetime": f"{day.isoformat()}T23:59:59Z",
    }

    [(path, kind, body)] = https_server.bodies  # only other.test asked for https
    assert (path, kind) == ("/tlsrpt", "application/tlsrpt+gzip")
    assert json.loads(gzip.decompress(body)) == reports["other.test"]

    sent = [
        getattr(r, "ll_fields", {})
        for r in caplog.records
        if getattr(r, "ll_event", None) == LogEvent.TLS_REPORT_SENT
    ]
    assert sorted((f["domain"], f["via"], f["failures"]) for f in sent) == [
        ("other.test", "mailto+https", 0),
        ("third.test", "mailto", 1),
    ]

    listed = json.loads(
        (await asyncio.to_thread(letterlock, home, "tls-reports", "sent", "--json")).stdout
    )
    by_domain = {r["domain"]: r for r in listed}
    assert by_domain["third.test"]["outcome"] == "sent"
    assert by_domain["third.test"]["destinations"] == ["mailto:tls-reports@reports.test"]
    # reports.test (where the reports went) asks for none: nothing is kept of it
    assert "reports.test" not in by_domain
    store = TlsReportStore(accounts.config.control_dir)
    try:
        assert await store.unreported(before=day + timedelta(days=2)) == []
        for domain in ("other.test", "third.test", "reports.test"):
            assert await store.sessions(day, domain) == []
    finally:
        await store.close()


async def test_dane_sessions_are_counted_under_their_tlsa_records(
    accounts: App, tmp_path: Path
) -> None:
    """A certificate a DNSSEC-vouched TLSA record pins is a tlsa success; the same MX
    with a record that matches nothing is a validation failure (delivery waits)."""
    from letterlock.services.mail.dane import Dane
    from smtp.test_dane import spki_sha256
    from smtp.test_mta_sts import start_receiver

    ca = TestCa(tmp_path / "dane-ca")
    receiver, controller, port = start_receiver(ca.server_context("mx1.other.test"))
    good = f"3 1 1 {spki_sha256(tmp_path / 'dane-ca' / 'mx1.other.test.pem')}"
    store = TlsReportStore(accounts.config.control_dir)
    results = TlsResults(store)

    async def loopback(host: str) -> str:
        return "127.0.0.1"

    async def mx(domain: str) -> list[str]:
        return [f"mx1.{domain}"]

    zone = {
        ("other.test.", "MX"): ["10 mx1.other.test."],
        ("_25._tcp.mx1.other.test.", "TLSA"): [good],
        ("third.test.", "MX"): ["10 mx1.third.test."],
        ("_25._tcp.mx1.third.test.", "TLSA"): ["3 1 1 " + "ab" * 32],
    }
    try:
        async with dns_server(zone, secure=[name for name, _ in zone]) as resolver:
            settings = OutboundSettings(
                hostname="mx.example.test", port=port, retry_base_s=30, timeout_s=5
            )
            queue = OutboundQueue(
                accounts.config.home,
                accounts.delivery,
                accounts.accounts,
                DkimKeys(accounts.config.control_dir),
                settings,
                mx_lookup=mx,
                dane=Dane(resolver),
                address_lookup=loopback,
                tls_results=results,
            )
            async with submitting_through(accounts, tmp_path, queue) as world:
                rcpts = ["carol@other.test", "dave@third.test"]
                assert await asyncio.to_thread(submit, world, rcpts) == {}
                await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        day = datetime.now(UTC).date()
        [ok] = await store.sessions(day, "other.test")
        [bad] = await store.sessions(day, "third.test")
    finally:
        controller.stop()
        await store.close()
    assert receiver.delivered == [["carol@other.test"]]
    assert (ok.policy_type, ok.strings, ok.result, ok.count) == ("tlsa", (good,), "", 1)
    assert (bad.policy_type, bad.result, bad.receiving_mx) == (
        "tlsa",
        "validation-failure",
        "mx1.third.test",
    )
    assert bad.sending_ip == bad.receiving_ip == "127.0.0.1"
