"""One account's addresses as its owner sees them (the privacy center's Addresses
tab): its own, the aliases, group memberships and catch-alls an operator gave it, the
addresses it was granted to send as, the domain aliases its addresses also work in,
and the sub-addressing rule in force; and of each, whether it may be the sender.

Read from the account's own region (its address book) and the control side's
domain aliases; nothing here changes anything: addresses are the operator's to give
(the admin console's Addresses page), as on a shared domain with Postfix or mailcow.
"""

from __future__ import annotations

from dataclasses import dataclass

from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.accounts.addresses import domain_of
from letterlock.services.mail.addresses import AddressKind, AddressService


@dataclass(frozen=True)
class OwnedAddress:
    address: str
    """A full address, or ``@domain`` for a catch-all or a domain-wide grant."""
    kind: str
    """primary, alias, group, catch-all, send-as or domain-alias."""
    receives: bool
    """Mail to it reaches this account."""
    sender: bool
    """It may be the sender (MAIL FROM, From:) of mail this account submits."""
    note: str = ""


@dataclass(frozen=True)
class AccountAddresses:
    addresses: tuple[OwnedAddress, ...]
    separator: str
    """The sub-address separator (``+``), or "" when sub-addressing is off."""
    example: str
    """A sub-address of the primary address, e.g. ``bob+news@example.test``."""


async def account_addresses(service: AddressService, ref: AccountRef) -> AccountAddresses:
    primary = ref.address
    out = [OwnedAddress(primary, "primary", True, True)]
    own_domains = {domain_of(primary)}
    for name, kind in await service.book(ref.region).addresses_of(primary):
        if kind is AddressKind.ALIAS:
            out.append(OwnedAddress(name, "alias", True, True))
            own_domains.add(domain_of(name))
        elif kind is AddressKind.GROUP:
            others = len(await service.targets(name)) - 1
            out.append(
                OwnedAddress(
                    name,
                    "group",
                    True,
                    False,
                    f"shared with {others} other account{'' if others == 1 else 's'}"
                    if others
                    else "you are its only member",
                )
            )
        else:
            out.append(
                OwnedAddress(
                    name,
                    "catch-all",
                    True,
                    False,
                    f"mail to any address of {name[1:]} that no account, alias or group takes",
                )
            )
    for granted in await service.grants(primary):
        out.append(
            OwnedAddress(
                granted,
                "send-as",
                False,
                True,
                "every address of the domain" if granted.startswith("@") else "",
            )
        )
    for alias, target in await service.list_domain_aliases():
        if target in own_domains:
            out.append(
                OwnedAddress(
                    f"@{alias}",
                    "domain-alias",
                    True,
                    True,
                    f"your addresses in {target} work in {alias} too",
                )
            )
    separator = service.separator
    local, _, domain = primary.rpartition("@")
    return AccountAddresses(
        tuple(out), separator, f"{local}{separator}news@{domain}" if separator else ""
    )
