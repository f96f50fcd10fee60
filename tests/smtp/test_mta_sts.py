"""MTA-STS (RFC 8461) for outbound mail, end to end: the policy's TXT record from a
DNS server on loopback, the policy itself from an HTTPS server on loopback whose
certificate a test CA issued (the queue is told to trust that CA), and a receiving
MX (aiosmtpd with STARTTLS) whose certificate the same CA issued, or not."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from letterlock.app import App
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.mta_sts import (
    MtaSts,
    PolicyError,
    StsSettings,
    parse_policy,
    parse_txt,
)
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.operations.log_events import LogEvent
from smtp.test_smtp_outbound import free_port, submit, submitting_through
from support.cli import letterlock
from support.dns_server import dns_server
from support.test_ca import TestCa

POLICY = "version: STSv1\r\nmode: {mode}\r\nmx: *.other.test\r\nmax_age: 86400\r\n"


# -- the policy text (pure) ---------------------------------------------------------

def test_policy_parsing_and_mx_patterns() -> None:
    policy = parse_policy("version: STSv1\nmode: enforce\nmx: mail.other.test\n"
                          "mx: *.backup.other.test\nmax_age: 604800\nextension: ignored\n")
    assert policy.mode == "enforce" and policy.max_age_s == 604800
    assert policy.allows("mail.other.test") and policy.allows("MAIL.other.test.")
    assert policy.allows("a.backup.other.test")
    assert not policy.allows("backup.other.test")  # the wildcard needs one label
    assert not policy.allows("a.b.backup.other.test")  # ... and only one
    assert not policy.allows("evil.test")
    assert parse_policy(POLICY.format(mode="testing")).mode == "testing"
    assert parse_policy("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 9999999999"
                        ).max_age_s == 31557600  # at most a year


@pytest.mark.parametrize("text", [
    "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
    "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
    "version: STSv1\nmode: enforce\nmax_age: 1\n",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: soon\n",
    "<html>not a policy</html>",
])
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_txt_record() -> None:
    assert parse_txt(["v=STSv1; id=20261205T01;"]) == "20261205T01"
    assert parse_txt(["v=spf1 -all", "v=STSv1;id=abc"]) == "abc"
    for records in ([], ["v=STSv1; id=a", "v=STSv1; id=b"], ["v=STSv1;"], ["v=STSv1; id=a-b"]):
        with pytest.raises(PolicyError):
            parse_txt(records)


# -- end to end --------------------------------------------------------------------

@dataclass
class PolicyServer:
    port: int
    text: dict[str, str]
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def policy_server(ca: TestCa) -> Iterator[PolicyServer]:
    """https://mta-sts.other.test/.well-known/mta-sts.txt on loopback (stdlib server
    in a thread, the test CA's certificate)."""
    served = PolicyServer(0, {"policy": POLICY.format(mode="enforce")})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits.append(self.path)
            body = served.text["policy"].encode()
            if self.path != "/.well-known/mta-sts.txt":
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ca.server_context("mta-sts.other.test").wrap_socket(
        server.socket, server_side=True)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


class Receiver:
    def __init__(self) -> None:
        self.delivered: list[list[str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.delivered.append(list(envelope.rcpt_tos))
        return "250 OK"


def start_receiver(tls: ssl.SSLContext) -> tuple[Receiver, Controller, int]:
    receiver = Receiver()
    port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=port, tls_context=tls)
    controller.start()
    return receiver, controller, port


@contextlib.asynccontextmanager
async def sts_queue(app: App, ca: TestCa, policy: PolicyServer, mx_port: int,
                    mx_host: str = "mx1.other.test",
                    ) -> AsyncIterator[tuple[OutboundQueue, MtaSts]]:
    zone = {("_mta-sts.other.test.", "TXT"): ['"v=STSv1; id=20261205"'],
            ("mta-sts.other.test.", "A"): ["127.0.0.1"]}
    async with dns_server(zone) as resolver:
        sts = MtaSts(resolver, StsSettings(tls_context=ca.client_context(),
                                           https_port=policy.port))
        settings = OutboundSettings(hostname="mx.example.test", port=mx_port,
                                    retry_base_s=0.2, retry_max_s=0.5, timeout_s=5,
                                    tls_context=ca.client_context())

        async def mx(domain: str) -> list[str]:
            return [mx_host]

        async def loopback(host: str) -> str:
            return "127.0.0.1"

        yield OutboundQueue(app.config.home, app.delivery, app.accounts,
                            DkimKeys(app.config.control_dir), settings, mx_lookup=mx,
                            mta_sts=sts, address_lookup=loopback), sts


def failures(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.ll_fields for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) == LogEvent.TLS_POLICY_FAILURE]


async def deliver_and_collect_failures(app: App, tmp_path: Path, ca: TestCa,
                                       policy: PolicyServer, tls: ssl.SSLContext,
                                       caplog: pytest.LogCaptureFixture,
                                       mx_host: str = "mx1.other.test",
                                       ) -> tuple[list[list[str]], list[str]]:
    """Submit one message to carol@other.test through an MTA-STS queue whose MX
    presents `tls`; return what the MX received and the TLS failure results logged."""
    receiver, controller, port = start_receiver(tls)
    try:
        async with sts_queue(app, ca, policy, port, mx_host) as (queue, _), \
                submitting_through(app, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda entries: not entries)
    finally:
        controller.stop()
    return receiver.delivered, [f["result"] for f in failures(caplog)]


async def test_enforced_policy_delivers_over_verified_tls_and_is_kept(
        accounts: App, tmp_path: Path, ca: TestCa, policy_server: PolicyServer) -> None:
    receiver, controller, port = start_receiver(ca.server_context("mx1.other.test"))
    try:
        async with sts_queue(accounts, ca, policy_server, port) as (queue, sts), \
                submitting_through(accounts, tmp_path, queue) as world:
            for _ in range(2):
                assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
                await queue.wait_until(lambda entries: not entries)
            assert sts.fetches == 1  # kept for max_age, the TXT id unchanged
    finally:
        controller.stop()
    assert receiver.delivered == [["carol@other.test"]] * 2
    assert policy_server.hits == ["/.well-known/mta-sts.txt"]


async def test_enforced_policy_defers_an_mx_it_does_not_name(
        accounts: App, tmp_path: Path, ca: TestCa, policy_server: PolicyServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    receiver, controller, port = start_receiver(ca.server_context("mx.evil.test"))
    try:
        async with sts_queue(accounts, ca, policy_server, port, "mx.evil.test") as (queue, _), \
                submitting_through(accounts, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
            [entry] = queue.entries()
            shown = await asyncio.to_thread(letterlock, accounts.config.home, "queue", "show",
                                            entry.id)
    finally:
        controller.stop()
    assert receiver.delivered == []
    assert entry.pending == ["carol@other.test"]
    assert entry.recipients[0].status == "4.7.5"
    assert ("4.7.5 MTA-STS: mx.evil.test is not an MX named by the enforced policy of "
            "other.test") in shown.stdout
    assert {"domain": "other.test", "policy": "sts", "result": "validation-failure",
            "mx": "mx.evil.test", "reason": "MX not in the policy"} in failures(caplog)


async def test_enforced_policy_defers_an_untrusted_certificate(
        accounts: App, tmp_path: Path, ca: TestCa, policy_server: PolicyServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    stranger = TestCa(tmp_path / "other-ca")  # a certificate no one was told to trust
    receiver, controller, port = start_receiver(stranger.server_context("mx1.other.test"))
    try:
        async with sts_queue(accounts, ca, policy_server, port) as (queue, _), \
                submitting_through(accounts, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
            [entry] = queue.entries()
    finally:
        controller.stop()
    assert receiver.delivered == []
    assert entry.recipients[0].status == "4.7.5"
    assert entry.recipients[0].diagnostic.startswith("MTA-STS: TLS with mx1.other.test failed")
    [failed] = failures(caplog)
    assert failed["result"] == "certificate-not-trusted" and failed["mx"] == "mx1.other.test"


async def test_testing_mode_only_logs(accounts: App, tmp_path: Path, ca: TestCa,
                                      policy_server: PolicyServer,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    policy_server.text["policy"] = POLICY.format(mode="testing")
    delivered, failed = await deliver_and_collect_failures(
        accounts, tmp_path, ca, policy_server, ca.server_context("mx.evil.test"), caplog,
        "mx.evil.test")
    assert delivered == [["carol@other.test"]]
    assert failed == ["validation-failure"]


async def test_unreachable_policy_server_means_no_policy_and_is_logged(
        accounts: App, tmp_path: Path, ca: TestCa, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    nowhere = PolicyServer(free_port(), {})  # nothing listens there
    delivered, failed = await deliver_and_collect_failures(
        accounts, tmp_path, ca, nowhere, ca.server_context("mx.evil.test"), caplog,
        "mx.evil.test")
    assert delivered == [["carol@other.test"]]  # RFC 8461 5: as without one
    assert failed == ["sts-policy-fetch-error"]


async def test_testing_mode_with_an_untrusted_certificate_delivers_after_logging(
        accounts: App, tmp_path: Path, ca: TestCa, policy_server: PolicyServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    policy_server.text["policy"] = POLICY.format(mode="testing")
    stranger = TestCa(tmp_path / "other-ca")
    delivered, failed = await deliver_and_collect_failures(
        accounts, tmp_path, ca, policy_server, stranger.server_context("mx1.other.test"),
        caplog)
    assert delivered == [["carol@other.test"]]
    assert failed == ["certificate-not-trusted"]


async def test_policy_is_fetched_again_when_its_txt_id_changes(
        ca: TestCa, policy_server: PolicyServer) -> None:
    zone = {("_mta-sts.other.test.", "TXT"): ['"v=STSv1; id=1"'],
            ("mta-sts.other.test.", "A"): ["127.0.0.1"]}
    async with dns_server(zone) as resolver:
        sts = MtaSts(resolver, StsSettings(tls_context=ca.client_context(),
                                           https_port=policy_server.port))
        first = await sts.policy("other.test")
        assert first is not None and first.mode == "enforce" and first.id == "1"
        assert await sts.policy("Other.Test.") == first and sts.fetches == 1
        policy_server.text["policy"] = POLICY.format(mode="testing")
        zone[("_mta-sts.other.test.", "TXT")] = ['"v=STSv1; id=2"']
        second = await sts.policy("other.test")
        assert second is not None and second.mode == "testing" and sts.fetches == 2
        # The policy server gone: the kept policy still applies (RFC 8461 5.1).
        policy_server.text["policy"] = "not a policy"
        zone[("_mta-sts.other.test.", "TXT")] = ['"v=STSv1; id=3"']
        assert await sts.policy("other.test") == second


async def test_policy_server_with_a_certificate_not_trusted_gives_no_policy(
        tmp_path: Path, policy_server: PolicyServer) -> None:
    zone = {("_mta-sts.other.test.", "TXT"): ['"v=STSv1; id=1"'],
            ("mta-sts.other.test.", "A"): ["127.0.0.1"]}
    async with dns_server(zone) as resolver:
        stranger = TestCa(tmp_path / "other-ca")  # the server's CA is not this one
        sts = MtaSts(resolver, StsSettings(tls_context=stranger.client_context(),
                                           https_port=policy_server.port))
        assert await sts.policy("other.test") is None


def test_tls_failures_are_counted_per_policy_and_result() -> None:
    from letterlock.services.mail.mta_sts import failure
    from letterlock.services.operations.log_events import EVENTS_LOGGER
    from letterlock.services.operations.metrics import Instruments, MetricsHandler

    instruments = Instruments()
    handler = MetricsHandler(instruments)
    events = logging.getLogger(EVENTS_LOGGER)
    events.addHandler(handler)
    level = events.level
    events.setLevel(logging.INFO)
    try:
        failure("other.test", "sts", "validation-failure", "mx.evil.test", "MX not in policy")
        failure("other.test", "sts", "validation-failure", "mx.evil.test", "MX not in policy")
        failure("third.test", "tlsa", "tlsa-invalid", "mx.third.test", "bogus")
    finally:
        events.removeHandler(handler)
        events.setLevel(level)
    counted = {(s.labels["policy"], s.labels["result"]): s.value
               for family in instruments.tls_failures.collect() for s in family.samples
               if s.name.endswith("_total")}
    assert counted == {("sts", "validation-failure"): 2.0, ("tlsa", "tlsa-invalid"): 1.0}
