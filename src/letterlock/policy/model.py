"""The legal request and the account facts, as LEGAL.md defines them.

Parsing is strict and pure: a JSON-like mapping in, a frozen dataclass out, or
:class:`letterlock.errors.InvalidInput` whose message names the offending field
(``issuer.country: expected a two-letter country code``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

from letterlock.errors import InvalidInput

AUTHORITIES = ("court", "prosecutor", "police", "intelligence", "administrative", "civil-party")
INSTRUMENTS = (
    "us-subpoena", "us-2703d-order", "us-warrant", "us-preservation", "us-nsl", "us-fisa",
    "emergency", "uk-copo", "au-ipo", "eu-epoc", "eu-epoc-pr", "mlat", "budapest-art7",
    "foreign-order", "civil",
)
ACTIONS = ("produce", "preserve", "intercept")
CATEGORIES = ("subscriber", "identification", "traffic", "content")
KEY_CUSTODY = ("sealed", "e2e")
REFUSAL_GROUNDS = ("immunity-or-privilege", "fundamental-rights", "ne-bis-in-idem",
                   "double-criminality")
"""The grounds an enforcing state may raise against a European Production Order
(Regulation (EU) 2023/1543 art. 12(1)(a)-(d)); their words are in the jurisdiction
data (e_evidence.json)."""

Action = Literal["produce", "preserve", "intercept"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Issuer:
    country: str
    authority: str
    name: str
    judge_validated: bool
    verified: bool


@dataclass(frozen=True)
class Offence:
    max_penalty_years: int
    listed: bool
    country: str


@dataclass(frozen=True)
class Gag:
    """A non-disclosure order: until a date, or indefinite (``until`` is None)."""

    until: datetime | None

    @property
    def indefinite(self) -> bool:
        return self.until is None

    @property
    def kind(self) -> str:
        return "indefinite" if self.until is None else "until"


@dataclass(frozen=True)
class DateRange:
    """The time the requested mail was received in: ``start`` (inclusive) to ``end``
    (exclusive); either may be open. In JSON both ends are inclusive, and a date alone
    means that whole day: ``{"from": "2025-01-01", "to": "2025-01-31"}``."""

    start: datetime | None
    end: datetime | None

    def __contains__(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and \
            (self.end is None or moment < self.end)

    def to_json(self) -> dict[str, str | None]:
        end: str | None = None
        if self.end is not None:
            last = self.end - timedelta(seconds=1)
            midnight = self.end == self.end.replace(hour=0, minute=0, second=0, microsecond=0)
            end = (self.end - timedelta(days=1)).date().isoformat() if midnight \
                else format_time(last)
        return {"from": None if self.start is None else format_time(self.start), "to": end}


@dataclass(frozen=True)
class LegalRequest:
    id: str | None
    received_at: datetime
    served_at: datetime
    issuer: Issuer
    instrument: str
    action: Action
    categories: tuple[str, ...]
    targets: tuple[str, ...]
    selector: str | None
    offence: Offence | None
    emergency: bool
    gag: Gag | None
    renewal_of_served_at: datetime | None
    date_range: DateRange | None = None
    """Only mail received in this range is produced (None: all of it)."""

    @property
    def specific(self) -> bool:
        """Named accounts, not a query over everyone."""
        return bool(self.targets) and self.selector is None

    def to_json(self) -> dict[str, Any]:
        """The request in LEGAL.md's JSON format (round-trips through parse_request)."""
        gag: dict[str, Any] | None
        if self.gag is None:
            gag = None
        elif self.gag.until is None:
            gag = {"indefinite": True}
        else:
            gag = {"until": format_time(self.gag.until)}
        out: dict[str, Any] = {
            "id": self.id,
            "received_at": format_time(self.received_at),
            "served_at": format_time(self.served_at),
            "issuer": {
                "country": self.issuer.country,
                "authority": self.issuer.authority,
                "name": self.issuer.name,
                "judge_validated": self.issuer.judge_validated,
                "verified": self.issuer.verified,
            },
            "instrument": self.instrument,
            "action": self.action,
            "categories": list(self.categories),
            "targets": list(self.targets),
            "offence": None if self.offence is None else {
                "max_penalty_years": self.offence.max_penalty_years,
                "listed": self.offence.listed,
                "country": self.offence.country,
            },
            "emergency": self.emergency,
            "gag": gag,
            "renewal_of_served_at": (None if self.renewal_of_served_at is None
                                     else format_time(self.renewal_of_served_at)),
        }
        if self.selector is not None:
            out["selector"] = self.selector
        if self.date_range is not None:
            out["date_range"] = self.date_range.to_json()
        return out


@dataclass(frozen=True)
class EnforcingStateAnswer:
    """What the enforcing state notified of a European Production Order answered
    (Regulation (EU) 2023/1543 art. 8 and 12), and when: no ground for refusal
    (``refusal_grounds`` empty: it confirmed it raises none), or the grounds it raised.
    No answer at all is no :class:`EnforcingStateAnswer`."""

    answered_at: datetime
    refusal_grounds: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return bool(self.refusal_grounds)

    def to_json(self) -> dict[str, Any]:
        return {"answered_at": format_time(self.answered_at),
                "refusal_grounds": list(self.refusal_grounds)}


def parse_enforcing_state(data: object, field: str) -> EnforcingStateAnswer | None:
    """``{"answered_at": TIME, "refusal_grounds": [...]}`` or null."""
    if data is None:
        return None
    obj = _mapping(data, field)
    unknown = sorted(set(obj) - {"answered_at", "refusal_grounds"})
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}: unknown field")
    if "answered_at" not in obj:
        raise InvalidInput(f"{field}.answered_at: missing (when the enforcing state answered)")
    grounds = _string_list(obj.get("refusal_grounds", []), f"{field}.refusal_grounds")
    for i, ground in enumerate(grounds):
        _choice(ground, f"{field}.refusal_grounds[{i}]", REFUSAL_GROUNDS)
    return EnforcingStateAnswer(parse_time(obj["answered_at"], f"{field}.answered_at"),
                                tuple(dict.fromkeys(grounds)))


@dataclass(frozen=True)
class AccountFacts:
    """What the operator knows about one target account."""

    exists: bool
    location: str | None
    us_person: bool
    residence: str | None
    hosted_tenant: bool
    conflict_with: tuple[str, ...]
    key_custody: str
    enforcing_state: EnforcingStateAnswer | None = None
    """The enforcing state's answer to a European Production Order for this
    account's data, once there is one."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exists": self.exists,
            "location": self.location,
            "us_person": self.us_person,
            "residence": self.residence,
            "hosted_tenant": self.hosted_tenant,
            "conflict_with": list(self.conflict_with),
            "key_custody": self.key_custody,
        }
        if self.enforcing_state is not None:
            out["enforcing_state"] = self.enforcing_state.to_json()
        return out


# --- time -------------------------------------------------------------------------


def parse_time(value: object, field: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC. Returns an aware UTC time."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field}: expected an ISO 8601 date or date-time")
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 date or date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: the one time format decisions use."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- field readers ------------------------------------------------------------------


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field}: expected an object")
    return cast(Mapping[str, Any], value)


def _bool(obj: Mapping[str, Any], key: str, field: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: expected true or false")
    return value


def _country(value: object, field: str) -> str:
    if not isinstance(value, str) or not _COUNTRY.match(value.upper()):
        raise InvalidInput(f"{field}: expected a two-letter country code")
    return value.upper()


def _choice(value: object, field: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{field}: expected one of {', '.join(allowed)}")
    return value


def _string_list(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field}: expected a list of strings")
    return cast(list[str], value)


_REQUEST_KEYS = frozenset({
    "id", "received_at", "served_at", "issuer", "instrument", "action", "categories",
    "targets", "selector", "offence", "emergency", "gag", "renewal_of_served_at",
    "date_range",
})


def _date_range(value: object) -> DateRange | None:
    if value is None:
        return None
    obj = _mapping(value, "date_range")
    unknown = sorted(set(obj) - {"from", "to"})
    if unknown:
        raise InvalidInput(f"date_range.{unknown[0]}: unknown field")
    start = None if obj.get("from") is None else parse_time(obj["from"], "date_range.from")
    end = None
    if obj.get("to") is not None:
        end = parse_time(obj["to"], "date_range.to")
        # inclusive: a date alone is its whole day, a time its whole second
        whole_day = isinstance(obj["to"], str) and len(obj["to"].strip()) == 10
        end += timedelta(days=1) if whole_day else timedelta(seconds=1)
        end = end.replace(microsecond=0)
    if start is None and end is None:
        raise InvalidInput('date_range: expected "from", "to" or both (or null)')
    if start is not None and end is not None and start >= end:
        raise InvalidInput("date_range: \"from\" is later than \"to\"")
    return DateRange(start, end)


def parse_request(data: object) -> LegalRequest:
    """Validate a request in LEGAL.md's format; raises InvalidInput naming the field."""
    obj = _mapping(data, "request")
    unknown = sorted(set(obj) - _REQUEST_KEYS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field")

    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, str) or not rid):
        raise InvalidInput("id: expected a non-empty string")
    if "received_at" not in obj:
        raise InvalidInput("received_at: missing")
    received_at = parse_time(obj["received_at"], "received_at")
    served_raw = obj.get("served_at")
    served_at = received_at if served_raw is None else parse_time(served_raw, "served_at")

    if "issuer" not in obj:
        raise InvalidInput("issuer: missing")
    iobj = _mapping(obj["issuer"], "issuer")
    name = iobj.get("name", "")
    if not isinstance(name, str):
        raise InvalidInput("issuer.name: expected a string")
    issuer = Issuer(
        country=_country(iobj.get("country"), "issuer.country"),
        authority=_choice(iobj.get("authority"), "issuer.authority", AUTHORITIES),
        name=name,
        judge_validated=_bool(iobj, "judge_validated", "issuer.judge_validated", False),
        verified=_bool(iobj, "verified", "issuer.verified", False),
    )

    instrument = _choice(obj.get("instrument"), "instrument", INSTRUMENTS)
    action = cast(Action, _choice(obj.get("action", "produce"), "action", ACTIONS))

    categories = _string_list(obj.get("categories"), "categories")
    if not categories:
        raise InvalidInput("categories: expected at least one category")
    for i, cat in enumerate(categories):
        _choice(cat, f"categories[{i}]", CATEGORIES)
    # One finding per category: duplicates collapse, order as given.
    categories = list(dict.fromkeys(categories))

    targets = _string_list(obj.get("targets", []), "targets")
    for i, target in enumerate(targets):
        if "@" not in target or target.strip() != target or not target:
            raise InvalidInput(f"targets[{i}]: expected an account address")
    targets = list(dict.fromkeys(t.lower() for t in targets))

    selector = obj.get("selector")
    if selector is not None and (not isinstance(selector, str) or not selector):
        raise InvalidInput("selector: expected a string such as \"query\"")

    offence: Offence | None = None
    if obj.get("offence") is not None:
        oobj = _mapping(obj["offence"], "offence")
        years = oobj.get("max_penalty_years", 0)
        if years is None:
            years = 0
        if isinstance(years, bool) or not isinstance(years, int | float) or years < 0:
            raise InvalidInput("offence.max_penalty_years: expected a number of years >= 0")
        ocountry = oobj.get("country")
        offence = Offence(
            max_penalty_years=int(years),
            listed=_bool(oobj, "listed", "offence.listed", False),
            country=issuer.country if ocountry is None else _country(ocountry, "offence.country"),
        )

    gag: Gag | None = None
    graw = obj.get("gag")
    if graw is not None:
        gobj = _mapping(graw, "gag")
        if gobj.get("indefinite") is True and "until" not in gobj:
            gag = Gag(until=None)
        elif "until" in gobj and not gobj.get("indefinite"):
            gag = Gag(until=parse_time(gobj["until"], "gag.until"))
        else:
            raise InvalidInput('gag: expected null, {"until": DATE} or {"indefinite": true}')

    renewal_raw = obj.get("renewal_of_served_at")
    renewal = (None if renewal_raw is None
               else parse_time(renewal_raw, "renewal_of_served_at"))
    if renewal is not None and renewal > served_at:
        raise InvalidInput("renewal_of_served_at: later than served_at")

    return LegalRequest(
        id=rid,
        received_at=received_at,
        served_at=served_at,
        issuer=issuer,
        instrument=instrument,
        action=action,
        categories=tuple(categories),
        targets=tuple(targets),
        selector=selector,
        offence=offence,
        emergency=_bool(obj, "emergency", "emergency", False),
        gag=gag,
        renewal_of_served_at=renewal,
        date_range=_date_range(obj.get("date_range")),
    )


_FACT_KEYS = frozenset({
    "exists", "location", "us_person", "residence", "hosted_tenant", "conflict_with",
    "key_custody", "enforcing_state",
})


def parse_account_facts(data: object, field: str) -> AccountFacts:
    obj = _mapping(data, field)
    unknown = sorted(set(obj) - _FACT_KEYS)
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}: unknown field")
    exists = _bool(obj, "exists", f"{field}.exists", True)
    location_raw = obj.get("location")
    location = None if location_raw is None else _country(location_raw, f"{field}.location")
    if exists and location is None:
        raise InvalidInput(f"{field}.location: missing for an existing account")
    us_person_raw = obj.get("us_person")
    if us_person_raw is not None and not isinstance(us_person_raw, bool):
        raise InvalidInput(f"{field}.us_person: expected true, false or null")
    residence_raw = obj.get("residence")
    residence = (None if residence_raw is None
                 else _country(residence_raw, f"{field}.residence"))
    conflict = _string_list(obj.get("conflict_with", []), f"{field}.conflict_with")
    conflict_with = tuple(
        _country(c, f"{field}.conflict_with[{i}]") for i, c in enumerate(conflict)
    )
    return AccountFacts(
        exists=exists,
        location=location,
        us_person=bool(us_person_raw),  # unknown counts as false (LEGAL.md)
        residence=residence,
        hosted_tenant=_bool(obj, "hosted_tenant", f"{field}.hosted_tenant", False),
        conflict_with=conflict_with,
        key_custody=_choice(obj.get("key_custody", "sealed"), f"{field}.key_custody",
                            KEY_CUSTODY),
        enforcing_state=parse_enforcing_state(obj.get("enforcing_state"),
                                              f"{field}.enforcing_state"),
    )


@dataclass(frozen=True)
class AssertedFacts:
    """Facts given with a request when it is filed (LEGAL.md's format, every field
    optional): what the legal team knows (``us_person``, ``residence``,
    ``conflict_with``) and, if stated, what the store knows too, to be checked."""

    exists: bool | None = None
    location: str | None = None
    us_person: bool | None = None
    residence: str | None = None
    hosted_tenant: bool | None = None
    conflict_with: tuple[str, ...] | None = None
    key_custody: str | None = None
    enforcing_state: EnforcingStateAnswer | None = None


def _opt_bool(obj: Mapping[str, Any], key: str, field: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{field}.{key}: expected true, false or null")
    return value


def parse_asserted_facts(data: object) -> dict[str, AssertedFacts]:
    """Facts for filing, keyed by account address (lower case); raises InvalidInput
    naming the field."""
    obj = _mapping(data, "facts")
    out: dict[str, AssertedFacts] = {}
    for address, entry in obj.items():
        if not isinstance(address, str) or "@" not in address:
            raise InvalidInput(f"facts.{address}: expected an account address as key")
        field = f"facts.{address}"
        fobj = _mapping(entry, field)
        unknown = sorted(set(fobj) - _FACT_KEYS)
        if unknown:
            raise InvalidInput(f"{field}.{unknown[0]}: unknown field")

        conflict = fobj.get("conflict_with")
        out[address.lower()] = AssertedFacts(
            exists=_opt_bool(fobj, "exists", field),
            location=None if fobj.get("location") is None
            else _country(fobj["location"], f"{field}.location"),
            us_person=_opt_bool(fobj, "us_person", field),
            residence=None if fobj.get("residence") is None
            else _country(fobj["residence"], f"{field}.residence"),
            hosted_tenant=_opt_bool(fobj, "hosted_tenant", field),
            conflict_with=None if conflict is None else tuple(
                _country(c, f"{field}.conflict_with[{i}]")
                for i, c in enumerate(_string_list(conflict, f"{field}.conflict_with"))),
            key_custody=None if fobj.get("key_custody") is None
            else _choice(fobj["key_custody"], f"{field}.key_custody", KEY_CUSTODY),
            enforcing_state=parse_enforcing_state(fobj.get("enforcing_state"),
                                                  f"{field}.enforcing_state"),
        )
    return out


def parse_facts(data: object) -> dict[str, AccountFacts]:
    """Facts keyed by account address (lower case)."""
    obj = _mapping(data, "facts")
    out: dict[str, AccountFacts] = {}
    for address, entry in obj.items():
        if not isinstance(address, str) or "@" not in address:
            raise InvalidInput(f"facts.{address}: expected an account address as key")
        out[address.lower()] = parse_account_facts(entry, f"facts.{address}")
    return out
