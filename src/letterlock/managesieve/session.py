"""One ManageSieve connection's state: who logged in, over what."""

from __future__ import annotations

from dataclasses import dataclass, field

from letterlock.services.accounts.accounts import AccountRef, AccountService, Session
from letterlock.services.mail.filters.scripts import FilterService


@dataclass
class SieveSession:
    accounts: AccountService
    filters: FilterService
    ip: str
    loopback: bool
    tls: bool = False
    owner: Session | None = field(default=None)
    ended: bool = False

    @property
    def ref(self) -> AccountRef | None:
        return None if self.owner is None else self.owner.ref

    @property
    def plaintext_ok(self) -> bool:
        # Passwords cross only TLS, or the loopback interface (as for IMAP).
        return self.tls or self.loopback
