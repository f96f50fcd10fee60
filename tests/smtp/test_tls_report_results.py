"""Which RFC 8460 result type a failed verified STARTTLS is counted and logged as:
an MX under an MTA-STS policy (mode testing, so the mail still goes) showing an
expired certificate, one for another name, one from a CA nobody trusts. The fake
DNS, policy server and MX are tests/smtp/test_mta_sts.py's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from letterlock.app import App
from smtp.test_mta_sts import (  # noqa: F401 - fixtures
    POLICY,
    PolicyServer,
    ca,
    deliver_and_collect_failures,
    policy_server,
)
from support.test_ca import TestCa


@pytest.mark.parametrize(
    ("certificate", "result"),
    [
        ("expired", "certificate-expired"),
        ("other-name", "certificate-host-mismatch"),
        ("untrusted", "certificate-not-trusted"),
    ],
)
async def test_failed_verification_is_named_by_its_result_type(
    accounts: App,
    tmp_path: Path,
    ca: TestCa,  # noqa: F811
    policy_server: PolicyServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    certificate: str,
    result: str,
) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    policy_server.text["policy"] = POLICY.format(mode="testing")
    tls = {
        "expired": lambda: ca.server_context("mx1.other.test", expired=True),
        "other-name": lambda: ca.server_context("mx9.other.test"),
        "untrusted": lambda: TestCa(tmp_path / "stranger").server_context("mx1.other.test"),
    }[certificate]()
    delivered, failed = await deliver_and_collect_failures(
        accounts, tmp_path, ca, policy_server, tls, caplog
    )
    assert delivered == [["carol@other.test"]]  # mode testing: delivered all the same
    assert failed == [result]
