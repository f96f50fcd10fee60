"""Email address syntax for account names and recipients (RFC 5321 mailbox, with
UTF-8 local parts allowed as RFC 6531 does)."""

from __future__ import annotations

import re

from letterlock.errors import InvalidAddress

_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\]\\]{1,64}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})+$")


def normalise_domain(domain: str) -> str:
    """Lower-case, IDNA-encoded domain; raises InvalidInput if malformed."""
    text = domain.strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress(f"invalid domain {domain!r}") from exc
    if not _DOMAIN.match(text):
        raise InvalidAddress(f"invalid domain {domain!r}")
    return text


def normalise_address(address: str) -> str:
    """``local@domain`` with the domain normalised and the local part lower-cased
    (letterlock treats local parts case-insensitively, as nearly all servers do)."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not _LOCAL.match(local) or local.startswith(".") \
            or local.endswith(".") or ".." in local:
        raise InvalidAddress(f"invalid address {address!r}")
    return f"{local.lower()}@{normalise_domain(domain)}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
