"""The date extension (RFC 5260): date and currentdate, their parts and zones, and
the vacation period Roundcube's form writes with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sieve_helpers import message, run

from letterlock.sieve import Discard, Keep, Vacation

ROUNDCUBE_DATED_VACATION = """\
require ["date","relational","vacation"];
# rule:[Holiday]
if allof (currentdate :value "ge" "date" "2026-12-20", currentdate :value "le" "date" "2027-01-05")
{
\tvacation :days 1 :subject "Holiday" "Back on 6 January.";
}
"""


@pytest.mark.parametrize(("now", "replies"), [
    (datetime(2026, 12, 19, 23, 59, tzinfo=UTC), False),
    (datetime(2026, 12, 20, 0, 0, tzinfo=UTC), True),
    (datetime(2027, 1, 5, 23, 0, tzinfo=UTC), True),
    (datetime(2027, 1, 6, 0, 0, tzinfo=UTC), False),
    # the delivery's zone decides the day: 23:30 UTC on the 5th is the 6th in +0100
    (datetime(2027, 1, 5, 23, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=1))),
     False),
])
def test_roundcube_vacation_with_dates(now: datetime, replies: bool) -> None:
    out = run(ROUNDCUBE_DATED_VACATION, now=now)
    assert any(isinstance(a, Vacation) for a in out.actions) is replies
    assert out.actions[-1] == Keep()


NOW = datetime(2026, 12, 6, 0, 30, 15, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(("part", "value"), [
    ("year", "2026"), ("month", "12"), ("day", "06"), ("date", "2026-12-06"),
    ("julian", "61380"), ("hour", "00"), ("minute", "30"), ("second", "15"),
    ("time", "00:30:15"), ("iso8601", "2026-12-06T00:30:15+00:00"),
    ("std11", "Sun, 06 Dec 2026 00:30:15 +0000"), ("zone", "+0000"), ("weekday", "0"),
])
def test_currentdate_parts(part: str, value: str) -> None:
    out = run(f'require "date";\nif currentdate :is "{part}" "{value}" {{ discard; }}',
              now=NOW)
    assert out.actions == (Discard(),)


def test_currentdate_zone() -> None:
    script = 'require "date";\nif currentdate :zone "-0800" "date" "2026-12-05" { discard; }'
    assert run(script, now=NOW).actions == (Discard(),)


def test_date_of_a_header() -> None:
    msg = message({"Date": "Fri, 04 Dec 2026 22:15:00 -0500",
                   "Received": "from a by b; Sat, 05 Dec 2026 03:16:00 +0000"})
    on = 'require ["date", "relational"];\nif date {z} "{h}" "{p}" "{v}" {{ discard; }}'
    cases = [("", "date", "date", "2026-12-05"),  # in the delivery's zone (UTC)
             (":originalzone", "date", "date", "2026-12-04"),
             (":originalzone", "date", "zone", "-0500"),
             (':zone "+0900"', "date", "hour", "12"),
             ("", "received", "minute", "16"),
             ("", "x-missing", "year", "2026")]
    for zone, header, date_part, value in cases:
        out = run(on.format(z=zone, h=header, p=date_part, v=value), msg, now=NOW)
        assert (out.actions == (Discard(),)) is (header != "x-missing"), (zone, header)


def test_date_reads_the_header_it_names() -> None:
    from letterlock.sieve import parse

    reads = parse('require "date";\nif date :is "Date" "year" "2026" { }\n'
                  'if currentdate :is "year" "2026" { }').reads()
    assert reads.headers == frozenset({"date"})
