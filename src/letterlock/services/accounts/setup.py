"""Initialising a data directory: regions, domains, the operator's country and policy
profile. `letterlock init` and `serve` on an empty HOME both come here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from letterlock.config import CONFIG_FILE
from letterlock.errors import InvalidInput

DEFAULT_DOMAINS = ("example.test",)
DEFAULT_REGIONS = (("us-east", "US"), ("eu-dublin", "IE"))
DEFAULT_OPERATOR_COUNTRY = "US"
DEFAULT_PROFILE = "location-2016"
PROFILES = ("location-2016", "cloud-act-2018")

_REGION_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class InitOptions:
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    regions: tuple[tuple[str, str], ...] = DEFAULT_REGIONS
    operator_country: str = DEFAULT_OPERATOR_COUNTRY
    profile: str = DEFAULT_PROFILE


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
    code = country.strip().upper()
    if not _COUNTRY.match(code):
        raise InvalidInput(f"country {country!r} must be an ISO 3166 two-letter code")
    return code


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise InvalidInput(f"profile {profile!r} must be one of {', '.join(PROFILES)}")
    return profile


def build_options(domains: Sequence[str], regions: Sequence[str],
                  operator_country: str | None, profile: str | None) -> InitOptions:
    return InitOptions(
        domains=tuple(domains) or DEFAULT_DOMAINS,
        regions=tuple(parse_region(r) for r in regions) or DEFAULT_REGIONS,
        operator_country=check_country(operator_country or DEFAULT_OPERATOR_COUNTRY),
        profile=check_profile(profile or DEFAULT_PROFILE),
    )


def write_config_file(home: Path, options: InitOptions) -> None:
    """Write the starting configuration file; the operator edits it from there."""
    path = home / CONFIG_FILE
    if path.exists():
        return
    path.write_text(
        "# letterlock configuration. Every option, its unit and default:\n"
        "#   letterlock config\n"
        "# Environment variables override this file: LETTERLOCK_<SECTION>_<OPTION>.\n\n"
        "[legal]\n"
        f'profile = "{options.profile}"\n'
        f'operator_country = "{options.operator_country}"\n',
        "utf-8")
