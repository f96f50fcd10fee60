"""TLS reporting (RFC 8460) pieces on their own: the ``_smtp._tls`` record, reading
received reports (and refusing anything else with a ReportError, never another
exception), and the daily job's choices when DNS fails or the reporting address is
no account (a real SQLite store, a queue that records what it is given)."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dns.exception
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail import tls_rpt
from letterlock.services.mail.tls_rpt import ReportError, check_report, parse_txt
from letterlock.services.operations.tls_reports import (
    ReporterSettings,
    TlsReporter,
    TlsResults,
)
from letterlock.storage.tls_reports_sqlite import TlsReportStore

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def test_txt_record() -> None:
    assert parse_txt(["v=TLSRPTv1; rua=mailto:a@b.test,https://r.b.test/x"]) == (
        "mailto:a@b.test",
        "https://r.b.test/x",
    )
    assert parse_txt(["v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@b.test"]) == ("mailto:a@b.test",)
    assert parse_txt(["v=TLSRPTv1; rua=ftp://x.test,mailto:a@b.test"]) == ("mailto:a@b.test",)
    for records in (
        [],
        ["v=TLSRPTv1; rua=mailto:a@b.test", "v=TLSRPTv1; rua=mailto:c@d.test"],
        ["v=TLSRPTv2; rua=mailto:a@b.test"],
        ["v=TLSRPTv1x; rua=mailto:a@b.test"],
        ["v=TLSRPTv1"],
    ):
        assert parse_txt(records) == (), records
    assert tls_rpt.mailto_address("mailto:a@b.test") == "a@b.test"
    for uri in (
        "mailto:a@b.test?subject=x",
        "mailto:a%40b.test",
        "mailto:a b@c.test",
        "mailto:ab.test",
    ):
        assert tls_rpt.mailto_address(uri) is None, uri


def _report(**changes: object) -> dict[str, object]:
    policy = tls_rpt.sts_policy("example.test", "enforce", ["mx.example.test"], 86400)
    doc = tls_rpt.build_report(
        organization="o",
        contact="c@o.test",
        report_id="r1",
        day=date(2026, 12, 4),
        sessions=[tls_rpt.SessionCount(policy, "", "192.0.2.1", "mx.example.test", "192.0.2.2", 7)],
    )
    return {**doc, **changes}


def test_a_report_we_build_is_one_we_read() -> None:
    row = check_report(json.dumps(_report()).encode(), via="smtp", received=NOW)
    assert (row.organization, row.report_id, row.domains, row.successes, row.failures) == (
        "o",
        "r1",
        ("example.test",),
        7,
        0,
    )
    assert row.start == datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"policies": []}, "policies is missing, empty or not a list"),
        ({"report-id": 7}, "report-id is missing or not a string"),
        (
            {"date-range": {"start-datetime": "yesterday", "end-datetime": "2026-12-04T23:59:59Z"}},
            "is not an RFC 3339 date-time",
        ),
        (
            {
                "date-range": {
                    "start-datetime": "2026-12-05T00:00:00Z",
                    "end-datetime": "2026-12-04T23:59:59Z",
                }
            },
            "ends before it starts",
        ),
        (
            {
                "policies": [
                    {"policy": {"policy-type": "dmarc", "policy-domain": "x.test"}, "summary": {}}
                ]
            },
            "policy-type 'dmarc' is not one of",
        ),
    ],
)
def test_reports_with_a_wrong_field_are_refused_naming_it(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ReportError, match=reason):
        check_report(json.dumps(_report(**changes)).encode(), via="smtp", received=NOW)


def test_a_gzip_bomb_stops_at_the_bound() -> None:
    bomb = gzip.compress(b" " * (tls_rpt.MAX_REPORT_BYTES + 10))
    with pytest.raises(ReportError, match="larger than 8 MiB"):
        tls_rpt.report_body(bomb, tls_rpt.MEDIA_GZIP)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_report_or_a_report_error(data: bytes) -> None:
    for read in (
        lambda: tls_rpt.report_from_mail(data),
        lambda: tls_rpt.report_body(data, tls_rpt.MEDIA_GZIP),
        lambda: check_report(data, via="https", received=NOW),
    ):
        with contextlib.suppress(ReportError):
            read()


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "policies",
                        "policy",
                        "summary",
                        "policy-type",
                        "policy-domain",
                        "report-id",
                        "date-range",
                        "start-datetime",
                        "failure-details",
                        "total-successful-session-count",
                        "result-type",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_is_a_report_or_a_report_error(doc: object) -> None:
    with contextlib.suppress(ReportError):
        check_report(json.dumps(doc).encode(), via="https", received=NOW)


# -- the daily job --------------------------------------------------------------------


class Queue:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, list[str], bytes]] = []

    async def submit(
        self,
        sender: AccountRef,
        mail_from: str,
        recipients: Sequence[str],
        message: bytes,
        *,
        sign_for: str | None = None,
    ) -> str:
        self.submitted.append((mail_from, list(recipients), message))
        return "q1"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TlsReportStore]:
    s = TlsReportStore(tmp_path, fsync=False)
    try:
        yield s
    finally:
        await s.close()


async def _count_one(store: TlsReportStore) -> None:
    results = TlsResults(store, clock=lambda: NOW)
    await results.record(
        tls_rpt.no_policy("other.test"),
        "starttls-not-supported",
        mx="MX.Other.Test.",
        sending_ip="192.0.2.1",
        receiving_ip="192.0.2.9",
    )


def _reporter(
    store: TlsReportStore,
    queue: Queue,
    *,
    txt: object,
    sender: bool = True,
    when: datetime = NOW + timedelta(days=1),
) -> TlsReporter:
    async def account() -> AccountRef | None:
        return object() if sender else None  # type: ignore[return-value]

    return TlsReporter(
        store,
        queue,
        account,
        ReporterSettings("tlsrpt@example.test", "mx.example.test"),
        txt=txt,
        clock=lambda: when,
    )  # type: ignore[arg-type]


async def test_a_failing_dns_lookup_is_retried_then_given_up(store: TlsReportStore) -> None:
    await _count_one(store)
    [row] = await store.sessions(NOW.date(), "other.test")
    assert (row.receiving_mx, row.result, row.count) == (
        "mx.other.test",
        "starttls-not-supported",
        1,
    )

    async def servfail(name: str) -> list[str]:
        raise dns.exception.Timeout

    queue = Queue()
    assert await _reporter(store, queue, txt=servfail).run() == 0
    assert await store.unreported(before=NOW.date() + timedelta(days=1)) == [
        (NOW.date(), "other.test")
    ]  # kept for the next run
    assert await _reporter(store, queue, txt=servfail, when=NOW + timedelta(days=5)).run() == 0
    assert await store.unreported(before=NOW.date() + timedelta(days=9)) == []
    [gave_up] = await store.sent()
    assert gave_up.outcome == "failed" and queue.submitted == []


async def test_no_report_while_the_reporting_address_is_no_account(store: TlsReportStore) -> None:
    await _count_one(store)

    async def rua(name: str) -> list[str]:
        return ["v=TLSRPTv1; rua=mailto:r@other.test"]

    queue = Queue()
    assert await _reporter(store, queue, txt=rua, sender=False).run() == 0
    assert queue.submitted == []
    assert await _reporter(store, queue, txt=rua).run() == 1  # once it is one
    [(mail_from, rcpts, message)] = queue.submitted
    assert (mail_from, rcpts) == ("tlsrpt@example.test", ["r@other.test"])
    doc = json.loads(tls_rpt.report_from_mail(message))
    assert doc["policies"][0]["policy"] == {
        "policy-type": "no-policy-found",
        "policy-domain": "other.test",
    }
    assert doc["policies"][0]["failure-details"][0]["receiving-mx-hostname"] == "mx.other.test"
