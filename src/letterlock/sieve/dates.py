"""The date extension (RFC 5260): the parts of a date that ``date`` (a header's
date) and ``currentdate`` (the time of delivery) compare, as Roundcube's vacation
form uses them for its first and last day."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from letterlock.mime.dates import sent_at

PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
         "iso8601", "std11", "zone", "weekday")
ZONE = re.compile(r"[+-]([01][0-9]|2[0-3])([0-5][0-9])")
_MJD_EPOCH = date(1858, 11, 17)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


def zone_of(text: str) -> timezone:
    """A "+hhmm"/"-hhmm" zone (checked by the parser)."""
    m = ZONE.fullmatch(text)
    assert m is not None
    offset = timedelta(hours=int(m.group(1)), minutes=int(m.group(2)))
    return timezone(-offset if text[0] == "-" else offset)


def _zone_text(dt: datetime) -> str:
    offset = dt.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def part(dt: datetime, name: str) -> str:
    """One date part of RFC 5260 section 4.2."""
    zone = _zone_text(dt)
    values = {
        "year": f"{dt.year:04d}", "month": f"{dt.month:02d}", "day": f"{dt.day:02d}",
        "date": f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}",
        "julian": str((dt.date() - _MJD_EPOCH).days),
        "hour": f"{dt.hour:02d}", "minute": f"{dt.minute:02d}",
        "second": f"{dt.second:02d}",
        "time": f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}",
        "iso8601": f"{dt:%Y-%m-%dT%H:%M:%S}{zone[:3]}:{zone[3:]}",
        "std11": f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} "
                 f"{dt.year:04d} {dt:%H:%M:%S} {zone}",
        "zone": zone,
        "weekday": str((dt.weekday() + 1) % 7),  # 0 is Sunday
    }
    return values[name]


def header_date(values: list[str], name: str) -> datetime | None:
    """The date in the first value of a header (for Received, after the last ';')."""
    if not values:
        return None
    text = values[0].rpartition(";")[2] if name.lower() == "received" else values[0]
    return sent_at(text)
