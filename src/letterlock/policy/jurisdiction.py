"""Jurisdiction data: country groups, agreements and instruments, loaded from the
editable JSON files in ``letterlock/policy/data`` (or an operator's copy), and the
date-dependent facts derived from them.

Nothing here decides an outcome; it only answers questions such as "is an agreement
in force between GB and US on this date for a uk-copo?" for the Cedar policies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from letterlock.errors import ConfigError
from letterlock.policy.model import (
    ACTIONS,
    CATEGORIES,
    INSTRUMENTS,
    REFUSAL_GROUNDS,
    AccountFacts,
    Gag,
    LegalRequest,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
PERSON_KINDS = ("us-person", "resident")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Length:
    """How long an obligation runs from service."""

    days: int = 0
    hours: int = 0
    emergency_hours: int | None = None
    renewal_days: int = 0

    def due(self, served_at: datetime, *, emergency: bool = False,
            renewal_of: datetime | None = None) -> datetime:
        if emergency and self.emergency_hours is not None:
            return served_at + timedelta(hours=self.emergency_hours)
        if renewal_of is not None:
            # A renewal extends the first period once: counted from the first service.
            return renewal_of + timedelta(days=self.days + self.renewal_days, hours=self.hours)
        return served_at + timedelta(days=self.days, hours=self.hours)


@dataclass(frozen=True)
class Agreement:
    id: str
    parties: frozenset[str]
    in_force_from: date | None
    in_force_until: date | None
    instruments: frozenset[str]
    categories: frozenset[str]
    excluded_persons: Mapping[str, tuple[str, ...]]

    def in_force(self, on: date) -> bool:
        if self.in_force_from is None or on < self.in_force_from:
            return False
        return self.in_force_until is None or on <= self.in_force_until

    def protects(self, issuer_country: str, facts: AccountFacts) -> bool:
        """Whether the issuer's orders under this agreement may not target the person."""
        for party in sorted(self.parties - {issuer_country}):
            for kind in self.excluded_persons.get(party, ()):
                if kind == "us-person" and facts.us_person:
                    return True
                if kind == "resident" and facts.residence == party:
                    return True
        return False


@dataclass(frozen=True)
class Instrument:
    name: str
    reach: Mapping[str, frozenset[str]]
    applies_from: date | None
    issuers: str | None
    domestic: bool
    implied_gag: str | None
    deadlines: Mapping[str, Length]


@dataclass(frozen=True)
class RefusalGround:
    """A ground the enforcing state may raise against a European Production Order."""

    id: str
    article: str
    words: str


@dataclass(frozen=True)
class EEvidence:
    """The e-Evidence rules as data (e_evidence.json): which orders and categories are
    notified to the enforcing state, and the grounds it may raise."""

    notified_instruments: frozenset[str]
    notified_categories: frozenset[str]
    refusal_grounds: Mapping[str, RefusalGround]


@dataclass(frozen=True)
class Operator:
    """The operator as the policy sees it: its seat and the countries it is established
    in (its regions' countries count)."""

    country: str
    establishments: frozenset[str]


@dataclass(frozen=True)
class Jurisdictions:
    eu: frozenset[str]
    eea: frozenset[str]
    e_evidence: frozenset[str]
    voluntary_disclosure: frozenset[str]
    agreements: tuple[Agreement, ...]
    instruments: Mapping[str, Instrument]
    default_deadlines: Mapping[str, Length]
    default_operator: Operator
    e_evidence_rules: EEvidence = EEvidence(frozenset(), frozenset(), {})

    # -- questions the policies ask -------------------------------------------------

    def in_group(self, country: str, group: str) -> bool:
        members = {"eu": self.eu, "eea": self.eea, "e_evidence": self.e_evidence}.get(group)
        return members is not None and country in members

    def reach(self, instrument: str, action: str) -> frozenset[str]:
        spec = self.instruments[instrument]
        if action in spec.reach:
            return spec.reach[action]
        return spec.reach.get("produce", frozenset())

    def applicable(self, instrument: str, issuer_country: str, on: date) -> bool:
        spec = self.instruments[instrument]
        if spec.applies_from is not None and on < spec.applies_from:
            return False
        return spec.issuers is None or self.in_group(issuer_country, spec.issuers)

    def agreement_for(self, issuer_country: str, operator_country: str, instrument: str,
                      category: str, on: date) -> Agreement | None:
        """The agreement in force that lets the issuer serve this order on the operator."""
        if issuer_country == operator_country:
            return None
        for agreement in self.agreements:
            if ({issuer_country, operator_country} <= agreement.parties
                    and instrument in agreement.instruments
                    and category in agreement.categories
                    and agreement.in_force(on)):
                return agreement
        return None

    def agreement_between(self, a: str, b: str, on: date) -> bool:
        return a != b and any(
            {a, b} <= ag.parties and ag.in_force(on) for ag in self.agreements
        )

    def deadline_length(self, instrument: str, kind: str) -> Length | None:
        spec = self.instruments.get(instrument)
        if spec is not None and kind in spec.deadlines:
            return spec.deadlines[kind]
        return self.default_deadlines.get(kind)

    def effective_gag(self, request: LegalRequest) -> Gag | None:
        """The non-disclosure order the request carries: its own ``gag``, else the one
        its instrument implies (a National Security Letter's, with ``"gag": null``).
        Everything that decides secrecy (the policy's context, sealed audit events,
        notices, lifting the order, the report) asks this, never ``request.gag``."""
        if request.gag is not None:
            return request.gag
        spec = self.instruments.get(request.instrument)
        if spec is not None and spec.implied_gag == "indefinite":
            return Gag(until=None)
        return None

    def acting_country(self, request: LegalRequest, operator: Operator) -> str:
        """The state whose law the request is made under."""
        if self.instruments[request.instrument].domestic:
            return operator.country
        return request.issuer.country


# --- loading --------------------------------------------------------------------------


def _read(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: missing jurisdiction data file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return cast(Mapping[str, Any], data)


def _countries(value: object, where: str, groups: Mapping[str, frozenset[str]]) -> frozenset[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of country codes")
    out: set[str] = set()
    for item in value:
        if isinstance(item, str) and item.startswith("@") and item[1:].lower() in groups:
            out |= groups[item[1:].lower()]
        elif isinstance(item, str) and _COUNTRY.match(item):
            out.add(item)
        else:
            raise ConfigError(f"{where}: {item!r} is not a country code or @GROUP")
    return frozenset(out)


def _date(value: object, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a YYYY-MM-DD date or null")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a YYYY-MM-DD date") from exc


def _length(value: object, where: str) -> Length:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object with days/hours")
    allowed = {"days", "hours", "emergency_hours", "renewal_days"}
    for key, item in value.items():
        if key not in allowed or isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ConfigError(f"{where}.{key}: expected a whole number >= 0 "
                              f"(keys: {', '.join(sorted(allowed))})")
    return Length(days=value.get("days", 0), hours=value.get("hours", 0),
                  emergency_hours=value.get("emergency_hours"),
                  renewal_days=value.get("renewal_days", 0))


def _deadlines(value: object, where: str) -> dict[str, Length]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object")
    return {k: _length(v, f"{where}.{k}") for k, v in value.items() if not k.startswith("_")}


def _categories(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or any(c not in CATEGORIES for c in value):
        raise ConfigError(f"{where}: expected a list of {', '.join(CATEGORIES)}")
    return frozenset(value)


def _e_evidence(base: Path) -> EEvidence:
    """e_evidence.json from ``base``; an operator's data directory written before the
    file existed uses the shipped one."""
    path = base / "e_evidence.json"
    if not path.exists():
        path = DATA_DIR / "e_evidence.json"
    e = _read(path)
    notification = e.get("notification")
    if not isinstance(notification, dict):
        raise ConfigError(f"{path}: notification: expected an object")
    notified = notification.get("instruments", [])
    if not isinstance(notified, list) or any(x not in INSTRUMENTS for x in notified):
        raise ConfigError(f"{path}: notification.instruments: expected a list of "
                          "instrument names")
    grounds_raw = e.get("refusal_grounds")
    if not isinstance(grounds_raw, dict):
        raise ConfigError(f"{path}: refusal_grounds: expected an object")
    grounds: dict[str, RefusalGround] = {}
    for gid in REFUSAL_GROUNDS:
        entry = grounds_raw.get(gid)
        if not isinstance(entry, dict) or not isinstance(entry.get("words"), str) \
                or not isinstance(entry.get("article", ""), str):
            raise ConfigError(f"{path}: refusal_grounds.{gid}: expected an object with "
                              "\"words\" (and \"article\")")
        grounds[gid] = RefusalGround(gid, entry.get("article", ""), entry["words"])
    extra = sorted(set(grounds_raw) - set(REFUSAL_GROUNDS) - {"_comment"})
    if extra:
        raise ConfigError(f"{path}: refusal_grounds.{extra[0]}: not a ground of art. 12(1) "
                          f"(grounds: {', '.join(REFUSAL_GROUNDS)})")
    return EEvidence(
        notified_instruments=frozenset(notified),
        notified_categories=_categories(notification.get("categories", []),
                                        f"{path}: notification.categories"),
        refusal_grounds=grounds,
    )


def load_jurisdictions(data_dir: Path | None = None) -> Jurisdictions:
    """Read and check the jurisdiction data; raises ConfigError naming file and key."""
    base = data_dir or DATA_DIR
    jpath, apath, ipath, opath = (base / n for n in (
        "jurisdictions.json", "agreements.json", "instruments.json", "operator.json"))
    j = _read(jpath)
    empty: dict[str, frozenset[str]] = {}
    eu = _countries(j.get("eu_members"), f"{jpath}: eu_members", empty)
    eea = _countries(j.get("eea_members", []), f"{jpath}: eea_members", empty)
    groups = {"eu": eu, "eea": eea}
    excluded = _countries(j.get("e_evidence_excluded", []), f"{jpath}: e_evidence_excluded",
                          groups)
    voluntary = _countries(j.get("voluntary_disclosure", []),
                           f"{jpath}: voluntary_disclosure", groups)

    a = _read(apath)
    agreements: list[Agreement] = []
    raw_agreements = a.get("agreements")
    if not isinstance(raw_agreements, list):
        raise ConfigError(f"{apath}: agreements: expected a list")
    for i, entry in enumerate(raw_agreements):
        where = f"{apath}: agreements[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ConfigError(f"{where}: expected an object with an id")
        instruments = entry.get("instruments", [])
        if not isinstance(instruments, list) or any(x not in INSTRUMENTS for x in instruments):
            raise ConfigError(f"{where}.instruments: expected a list of instrument names")
        excluded_raw = entry.get("excluded_persons", {})
        if not isinstance(excluded_raw, dict):
            raise ConfigError(f"{where}.excluded_persons: expected an object")
        excluded_persons: dict[str, tuple[str, ...]] = {}
        for party, kinds in excluded_raw.items():
            if not isinstance(kinds, list) or any(k not in PERSON_KINDS for k in kinds):
                raise ConfigError(f"{where}.excluded_persons.{party}: expected a list of "
                                  f"{', '.join(PERSON_KINDS)}")
            excluded_persons[party] = tuple(kinds)
        agreements.append(Agreement(
            id=entry["id"],
            parties=_countries(entry.get("parties", []), f"{where}.parties", empty),
            in_force_from=_date(entry.get("in_force_from"), f"{where}.in_force_from"),
            in_force_until=_date(entry.get("in_force_until"), f"{where}.in_force_until"),
            instruments=frozenset(instruments),
            categories=_categories(entry.get("categories", list(CATEGORIES)),
                                   f"{where}.categories"),
            excluded_persons=excluded_persons,
        ))

    ins = _read(ipath)
    raw_instruments = ins.get("instruments")
    if not isinstance(raw_instruments, dict):
        raise ConfigError(f"{ipath}: instruments: expected an object")
    instruments_out: dict[str, Instrument] = {}
    for name in INSTRUMENTS:
        where = f"{ipath}: instruments.{name}"
        spec = raw_instruments.get(name)
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: missing")
        reach_raw = spec.get("reach")
        if not isinstance(reach_raw, dict) or any(k not in ACTIONS for k in reach_raw):
            raise ConfigError(f"{where}.reach: expected an object keyed by action")
        issuers = spec.get("issuers")
        if issuers is not None and issuers not in ("eu", "eea", "e_evidence"):
            raise ConfigError(f"{where}.issuers: expected eu, eea or e_evidence")
        implied_gag = spec.get("implied_gag")
        if implied_gag not in (None, "indefinite"):
            raise ConfigError(f"{where}.implied_gag: expected \"indefinite\" or absent")
        instruments_out[name] = Instrument(
            name=name,
            reach={k: _categories(v, f"{where}.reach.{k}") for k, v in reach_raw.items()},
            applies_from=_date(spec.get("applies_from"), f"{where}.applies_from"),
            issuers=issuers,
            domestic=bool(spec.get("domestic", False)),
            implied_gag=implied_gag,
            deadlines=_deadlines(spec.get("deadlines"), f"{where}.deadlines"),
        )
    extra = sorted(set(raw_instruments) - set(INSTRUMENTS) - {"_comment"})
    if extra:
        raise ConfigError(f"{ipath}: instruments.{extra[0]}: not an instrument LEGAL.md knows")
    defaults = ins.get("defaults", {})
    default_deadlines = _deadlines(
        defaults.get("deadlines") if isinstance(defaults, dict) else None,
        f"{ipath}: defaults.deadlines")

    o = _read(opath)
    ocountry = o.get("country")
    if not isinstance(ocountry, str) or not _COUNTRY.match(ocountry):
        raise ConfigError(f"{opath}: country: expected a two-letter country code")
    establishments = _countries(o.get("establishments", []), f"{opath}: establishments", groups)

    return Jurisdictions(
        eu=eu, eea=eea, e_evidence=eu - excluded, voluntary_disclosure=voluntary,
        agreements=tuple(agreements), instruments=instruments_out,
        default_deadlines=default_deadlines,
        default_operator=Operator(ocountry, establishments | {ocountry}),
        e_evidence_rules=_e_evidence(base),
    )
