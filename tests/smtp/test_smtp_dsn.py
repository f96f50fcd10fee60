"""RFC 3464 bounce structure, parsed back with the standard library."""

from __future__ import annotations

import email
from datetime import UTC, datetime

from letterlock.services.mail.dsn import FailedRecipient, build_dsn


def test_dsn_is_a_delivery_status_report() -> None:
    original = b"From: a@x.test\r\nSubject: hello\r\n\r\nsecret body\r\n"
    now = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
    raw = build_dsn(reporting_mta="mx.x.test", sender="a@x.test", original=original,
                    arrival=now, now=now, failed=[
                        FailedRecipient("b@y.test", "5.1.1", "550 5.1.1 no such user", "mx.y"),
                        FailedRecipient("c@y.test", "bogus", "\x00weird\nreply")])
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    text, status, headers = msg.get_payload()
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    per_message, first, second = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.x.test"
    assert first["Final-Recipient"] == "rfc822; b@y.test"
    assert first["Status"] == "5.1.1" and first["Action"] == "failed"
    assert first["Remote-MTA"] == "dns; mx.y"
    assert second["Status"] == "5.0.0"  # an invalid status is never passed through
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw  # only the header section is returned
    assert b"Subject: hello" in raw
    assert raw.isascii()
