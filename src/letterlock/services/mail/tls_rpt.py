"""SMTP TLS Reporting (RFC 8460), the pure part: the result vocabulary, the policy a
session ran under, the ``_smtp._tls`` TXT record, the aggregate report (JSON) and the
mail that carries it; and the other way, a report someone sent us, read and checked.

No I/O here: the daily job that sends reports and the intake that stores received
ones are services/operations/tls_reports.py; what is counted, and where, is
storage/tls_reports_sqlite.py.

What a report holds is operator metadata about mail servers (names, IP addresses,
TLS outcomes, counts per day), never a mail address of a user, a subject or any
other part of a message.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from typing import Any

from letterlock.errors import InvalidInput
from letterlock.storage.tls_reports_sqlite import ReceivedRow

POLICY_TYPES = ("sts", "tlsa", "no-policy-found")
RESULT_TYPES = (
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
)
"""RFC 8460 4.3: why a session failed (a session that did not fail is a success)."""
SUCCESS = ""
"""The result of a session that negotiated TLS as its policy asked."""

MEDIA_GZIP = "application/tlsrpt+gzip"
MEDIA_JSON = "application/tlsrpt+json"
MAX_REPORT_BYTES = 8 * 1024 * 1024
"""Largest report accepted, decompressed (a gzip bomb stops here)."""


class ReportError(InvalidInput):
    """A report (or what claimed to be one) that cannot be taken: the message says
    what is wrong in one line."""


@dataclass(frozen=True)
class PolicyInfo:
    """The policy a session to a recipient domain ran under (RFC 8460 4.4)."""

    type: str
    domain: str
    strings: tuple[str, ...] = ()
    """The policy as published: the MTA-STS policy's lines, or TLSA records."""
    mx_hosts: tuple[str, ...] = ()
    """The MX patterns of an MTA-STS policy."""


def sts_policy(domain: str, mode: str, mx: Sequence[str], max_age_s: int) -> PolicyInfo:
    lines = ("version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age_s}")
    return PolicyInfo("sts", domain, lines, tuple(mx))


def tlsa_policy(domain: str, records: Iterable[tuple[int, int, int, bytes]]) -> PolicyInfo:
    return PolicyInfo("tlsa", domain, tuple(f"{u} {s} {m} {d.hex()}" for u, s, m, d in records))


def no_policy(domain: str) -> PolicyInfo:
    return PolicyInfo("no-policy-found", domain)


@dataclass(frozen=True)
class SessionCount:
    """Sessions of one day with the same policy, result and servers."""

    policy: PolicyInfo
    result: str
    """:data:`SUCCESS` or one of :data:`RESULT_TYPES`."""
    sending_ip: str
    receiving_mx: str
    receiving_ip: str
    count: int


# -- the _smtp._tls record (RFC 8460 3) -----------------------------------------------


def parse_txt(records: Sequence[str]) -> tuple[str, ...]:
    """The ``rua`` destinations (``mailto:`` and ``https:`` URIs) of a domain's
    ``_smtp._tls`` TXT records; () unless exactly one record is TLSRPTv1."""
    found = [r for r in records if re.match(r"v=TLSRPTv1\s*(;|$)", r)]
    if len(found) != 1:
        return ()
    for part in found[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "rua":
            return tuple(
                u.strip()
                for u in value.split(",")
                if u.strip().lower().startswith(("mailto:", "https:"))
            )
    return ()


def mailto_address(uri: str) -> str | None:
    """The address of a ``mailto:`` URI (query and percent-escapes refused), or None."""
    address = uri[len("mailto:") :]
    if (
        "?" in address
        or "%" in address
        or address.count("@") != 1
        or not re.fullmatch(r"[!-~]+", address)
    ):
        return None
    return address


# -- the report (RFC 8460 4) ---------------------------------------------------------


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1) - timedelta(seconds=1)


def build_report(
    *, organization: str, contact: str, report_id: str, day: date, sessions: Sequence[SessionCount]
) -> dict[str, Any]:
    """The aggregate report of one UTC day for one policy domain (the sessions'
    domain), one entry per policy the sessions ran under."""
    start, end = day_range(day)
    by_policy: dict[PolicyInfo, list[SessionCount]] = {}
    for s in sessions:
        by_policy.setdefault(s.policy, []).append(s)
    policies = []
    for info, counted in by_policy.items():
        policy_doc: dict[str, Any] = {"policy-type": info.type, "policy-domain": info.domain}
        if info.strings:
            policy_doc["policy-string"] = list(info.strings)
        if info.mx_hosts:
            policy_doc["mx-host"] = list(info.mx_hosts)
        failures = [s for s in counted if s.result != SUCCESS]
        entry: dict[str, Any] = {
            "policy": policy_doc,
            "summary": {
                "total-successful-session-count": sum(
                    s.count for s in counted if s.result == SUCCESS
                ),
                "total-failure-session-count": sum(s.count for s in failures),
            },
        }
        if failures:
            entry["failure-details"] = [_detail(s) for s in failures]
        policies.append(entry)
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": _utc(start), "end-datetime": _utc(end)},
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def _detail(s: SessionCount) -> dict[str, Any]:
    detail: dict[str, Any] = {"result-type": s.result, "failed-session-count": s.count}
    if s.sending_ip:
        detail["sending-mta-ip"] = s.sending_ip
    if s.receiving_mx:
        detail["receiving-mx-hostname"] = s.receiving_mx
    if s.receiving_ip:
        detail["receiving-ip"] = s.receiving_ip
    return detail


def gzip_report(report: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(report, indent=1).encode("utf-8"), mtime=0)


def report_mail(
    *,
    report: dict[str, Any],
    domain: str,
    submitter: str,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
) -> bytes:
    """The mail that carries ``report`` (RFC 8460 5.3): multipart/report with
    report-type tlsrpt, a short text part and the gzipped JSON."""
    start = int(datetime.fromisoformat(report["date-range"]["start-datetime"]).timestamp())
    end = int(datetime.fromisoformat(report["date-range"]["end-datetime"]).timestamp())
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=submitter)
    msg["Subject"] = (
        f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report['report-id']}>"
    )
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(
        f"This is an aggregate TLS report (RFC 8460) from {submitter} about "
        f"mail it sent to {domain}.\n"
    )
    msg.add_attachment(
        gzip_report(report),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=f"{submitter}!{domain}!{start}!{end}!{report['report-id']}.json.gz",
    )
    msg.set_type("multipart/report")
    msg.set_param("report-type", "tlsrpt")
    return msg.as_bytes(policy=policy.SMTP)


# -- reports we receive ---------------------------------------------------------------


def report_from_mail(raw: bytes) -> bytes:
    """The report (JSON, decompressed) a report mail carries. Raises ReportError."""
    msg = message_from_bytes(raw, policy=policy.default)
    if (
        msg.get_content_type() != "multipart/report"
        or str(msg.get_param("report-type", "")).lower() != "tlsrpt"
    ):
        raise ReportError(
            "not a TLS report: Content-Type is not multipart/report with report-type=tlsrpt"
        )
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in (MEDIA_GZIP, MEDIA_JSON):
            return report_body(_payload(part), kind)
    raise ReportError(f"no {MEDIA_GZIP} or {MEDIA_JSON} part in the report mail")


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        raise ReportError("the report part is empty")
    return data


def report_body(data: bytes, media_type: str) -> bytes:
    """The JSON of a report body of ``media_type`` (gzip or JSON), decompressed
    within :data:`MAX_REPORT_BYTES`. Raises ReportError."""
    if media_type == MEDIA_JSON:
        if len(data) > MAX_REPORT_BYTES:
            raise ReportError("report larger than 8 MiB")
        return data
    if media_type != MEDIA_GZIP:
        raise ReportError(f"media type {media_type[:60]!r} is not {MEDIA_GZIP} or {MEDIA_JSON}")
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, MAX_REPORT_BYTES + 1)
    except zlib.error as exc:
        raise ReportError(f"the report is not valid gzip: {exc}") from None
    if len(out) > MAX_REPORT_BYTES:
        raise ReportError("report larger than 8 MiB once decompressed")
    return out


def check_report(data: bytes, *, via: str, received: datetime) -> ReceivedRow:
    """``data`` (JSON) checked against the structure of RFC 8460 4.4, as it is
    stored (its number still 0). Raises ReportError naming the first field that is
    wrong."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"the report is not JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise ReportError("the report is not a JSON object")
    org = _text(doc, "organization-name")
    contact = _text(doc, "contact-info")
    report_id = _text(doc, "report-id")
    dates = doc.get("date-range")
    if not isinstance(dates, dict):
        raise ReportError("date-range is missing or not an object")
    start = _when(dates, "start-datetime")
    end = _when(dates, "end-datetime")
    if end < start:
        raise ReportError("date-range ends before it starts")
    policies = doc.get("policies")
    if not isinstance(policies, list) or not policies:
        raise ReportError("policies is missing, empty or not a list")
    domains: list[str] = []
    successes = failures = 0
    for i, entry in enumerate(policies):
        where = f"policies[{i}]"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("policy"), dict)
            or not isinstance(entry.get("summary"), dict)
        ):
            raise ReportError(f"{where} needs the objects policy and summary")
        pol = entry["policy"]
        kind = _text(pol, "policy-type", where)
        if kind not in POLICY_TYPES:
            raise ReportError(
                f"{where}.policy-type {kind[:30]!r} is not one of {', '.join(POLICY_TYPES)}"
            )
        domain = _text(pol, "policy-domain", where).rstrip(".").lower()
        for key in ("policy-string", "mx-host"):
            if key in pol and not (
                isinstance(pol[key], list) and all(isinstance(s, str) for s in pol[key])
            ):
                raise ReportError(f"{where}.{key} is not a list of strings")
        summary = entry["summary"]
        successes += _count(summary, "total-successful-session-count", f"{where}.summary")
        failures += _count(summary, "total-failure-session-count", f"{where}.summary")
        details = entry.get("failure-details", [])
        if not isinstance(details, list):
            raise ReportError(f"{where}.failure-details is not a list")
        for j, detail in enumerate(details):
            at = f"{where}.failure-details[{j}]"
            if not isinstance(detail, dict):
                raise ReportError(f"{at} is not an object")
            _text(detail, "result-type", at)  # other types may come (RFC 8460 6.6)
            _count(detail, "failed-session-count", at)
        if domain not in domains:
            domains.append(domain)
    return ReceivedRow(
        0,
        received,
        via,
        org,
        contact,
        report_id,
        start,
        end,
        tuple(domains),
        successes,
        failures,
        data.decode("utf-8"),
    )


def _text(doc: dict[str, Any], key: str, where: str = "") -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise ReportError(f"{where + '.' if where else ''}{key} is missing or not a string")
    return value.strip()


def _when(doc: dict[str, Any], key: str) -> datetime:
    text = _text(doc, key, "date-range")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ReportError(f"date-range.{key} {text[:40]!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        raise ReportError(f"date-range.{key} has no time zone")
    return when.astimezone(UTC)


def _count(doc: dict[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}.{key} is missing or not a count")
    return value
