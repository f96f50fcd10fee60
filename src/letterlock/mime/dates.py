"""The date a message says it was sent (its Date: field, RFC 5322 3.3), for SEARCH
SENT* and SORT DATE: pure, text in, an aware datetime out.

A year beyond what a datetime holds (9999) is clamped to the last second there is,
as Dovecot clamps such dates to its own limit, instead of making the message fall
out of every date search: such a message was "sent" after any date a client asks
about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def sent_at(value: str) -> datetime | None:
    """The instant of a Date: field's value, with its zone (UTC when it has none);
    LATEST for a year past 9999; None when it is no date."""
    try:
        parts = parsedate_tz(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None:
        return None
    year, month, day, hour, minute, second, *_, offset = parts
    if year > LATEST.year:
        return LATEST
    try:
        zone = UTC if offset is None else timezone(timedelta(seconds=offset))
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except (ValueError, OverflowError):
        return None
