"""Initialising a data directory: regions, domains, the operator's country and policy
profile. `letterlock init` and `serve` on an empty HOME both come here."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from letterlock.config import CONFIG_FILE
from letterlock.errors import ConfigError, InvalidInput
from letterlock.services.accounts import countries

DEFAULT_DOMAINS = ("example.test",)
DEFAULT_REGIONS = (("us-east", "US"), ("eu-dublin", "IE"))
DEFAULT_OPERATOR_COUNTRY = "US"
DEFAULT_PROFILE = "location-2016"
PROFILES = ("location-2016", "cloud-act-2018")

_REGION_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SECTION_LINE = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")

Setting = tuple[str, str, int | str]
"""(section, option, value) that ``init`` writes to the configuration file."""


@dataclass(frozen=True)
class InitOptions:
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    regions: tuple[tuple[str, str], ...] = DEFAULT_REGIONS
    operator_country: str = DEFAULT_OPERATOR_COUNTRY
    profile: str = DEFAULT_PROFILE
    settings: tuple[Setting, ...] = ()
    """Options given to ``init`` (listener ports, bind address) that the file keeps,
    so a later ``serve`` uses them."""


def parse_region(spec: str) -> tuple[str, str]:
    """``ID:CC`` -> (id, country). Raises InvalidInput naming what is wrong."""
    region_id, sep, country = spec.partition(":")
    if not sep:
        raise InvalidInput(f"region {spec!r} must be ID:CC, e.g. eu-dublin:IE")
    check_region_id(region_id)
    return region_id, check_country(country)


def check_region_id(region_id: str) -> str:
    if not _REGION_ID.match(region_id):
        raise InvalidInput(f"region id {region_id!r} must be lower-case letters, digits, '-'")
    return region_id


def check_country(country: str) -> str:
    """The ISO 3166-1 alpha-2 code ``country`` names, upper-cased. Raises
    InvalidInput for anything else, with a hint for UK and EL."""
    code = country.strip().upper()
    if not _COUNTRY.match(code):
        raise InvalidInput(f"country {country!r} must be an ISO 3166 two-letter code")
    if not countries.is_country(code):
        meant = countries.MEANT.get(code)
        hint = f" (for {meant[1]} use {meant[0]})" if meant else " (e.g. US, IE, DE)"
        raise InvalidInput(f"country {code!r} is not an ISO 3166-1 alpha-2 country code"
                           + hint)
    return code


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise InvalidInput(f"profile {profile!r} must be one of {', '.join(PROFILES)}")
    return profile


def build_options(domains: Sequence[str], regions: Sequence[str],
                  operator_country: str | None, profile: str | None,
                  settings: Sequence[Setting] = ()) -> InitOptions:
    return InitOptions(
        domains=tuple(domains) or DEFAULT_DOMAINS,
        regions=tuple(parse_region(r) for r in regions) or DEFAULT_REGIONS,
        operator_country=check_country(operator_country or DEFAULT_OPERATOR_COUNTRY),
        profile=check_profile(profile or DEFAULT_PROFILE),
        settings=tuple(settings),
    )


def write_config_file(home: Path, options: InitOptions) -> None:
    """Write the starting configuration file; the operator edits it from there. On a
    HOME that has one, only the options given to ``init`` are set in it, in place."""
    path = home / CONFIG_FILE
    if not path.exists():
        path.write_text(
            "# letterlock configuration. Every option, its unit and default:\n"
            "#   letterlock config\n"
            "# Environment variables override this file: LETTERLOCK_<SECTION>_<OPTION>.\n\n"
            "[legal]\n"
            f'profile = "{options.profile}"\n'
            f'operator_country = "{options.operator_country}"\n',
            "utf-8")
    if options.settings:
        text = path.read_text("utf-8")
        for section, name, value in options.settings:
            text = set_option(text, section, name, value)
        path.write_text(text, "utf-8")


def set_option(text: str, section: str, name: str, value: int | str) -> str:
    """The TOML ``text`` with ``section.name = value``: the option's line replaced
    where it has one, else added to its section (made at the end if missing). Other
    lines, comments included, are kept as they are. Raises ConfigError when the file
    is not TOML the edit can follow (it is checked by reading it back)."""
    rendered = f"{name} = {json.dumps(value, ensure_ascii=False)}"
    key_line = re.compile(rf"^\s*{re.escape(name)}\s*=")
    lines = text.splitlines()
    current, insert_at, done = "", -1, False
    for i, line in enumerate(lines):
        header = _SECTION_LINE.match(line)
        if header:
            current = header.group(1)
            if current == section:
                insert_at = i + 1
        elif current == section and key_line.match(line):
            lines[i], done = rendered, True
            break
        elif current == section and line.strip():
            insert_at = i + 1
    if not done and insert_at >= 0:
        lines.insert(insert_at, rendered)
    elif not done:
        lines += ["", f"[{section}]", rendered]
    edited = "\n".join(lines) + "\n"
    try:
        check = tomllib.loads(edited).get(section, {}).get(name)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot set {section}.{name}: {exc}") from exc
    if check != value:
        raise ConfigError(f"{CONFIG_FILE}: cannot set {section}.{name}; edit the file by hand")
    return edited
