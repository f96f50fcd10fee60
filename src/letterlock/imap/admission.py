"""Caps on IMAP connections that have not logged in yet: a client address may hold at
most ``imap.max_unauthenticated_per_address`` of them, the process at most
``imap.max_unauthenticated`` (both counted per process: see ImapConfig). A
connection stops counting once it has logged in (or when it ends). Peers in
``imap.trusted_networks`` (loopback by default: a webmail or a proxy on this machine)
are neither held to the caps nor counted.

A connection over a cap is refused at once with ``* BYE Too many connections``
(RFC 9051 7.1.5: BYE may be the greeting) and one ``limit:client:refused`` log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from letterlock.errors import ConfigError
from letterlock.smtp.limits import Network, in_networks, parse_networks

PER_ADDRESS = "imap-connections"
"""``limit`` of the log line when one address holds too many (the metric's label)."""
TOTAL = "imap-connections-total"
"""``limit`` of the log line when the process holds too many in all."""


def trusted_networks(text: str) -> tuple[Network, ...]:
    """``imap.trusted_networks`` read as CIDR blocks; ConfigError names the option."""
    try:
        return parse_networks(text)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("smtp.trusted_networks",
                                           "imap.trusted_networks")) from exc


@dataclass
class Admission:
    """Counts the unauthenticated connections of one process."""

    per_address: int
    total: int
    trusted: tuple[Network, ...] = ()
    _by_address: dict[str, int] = field(default_factory=dict)
    _count: int = 0

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; returns None when admitted, else the
        limit it would break (PER_ADDRESS or TOTAL; then it is not counted).
        An admitted connection must be released exactly once (:meth:`release`)."""
        if self.exempt(ip):
            return None
        held = self._by_address.get(ip, 0)
        if held >= self.per_address:
            return PER_ADDRESS
        if self._count >= self.total:
            return TOTAL
        self._by_address[ip] = held + 1
        self._count += 1
        return None

    def release(self, ip: str) -> None:
        """The connection from ``ip`` logged in or ended: it no longer counts."""
        if self.exempt(ip):
            return
        held = self._by_address.get(ip, 0)
        if held <= 1:
            self._by_address.pop(ip, None)
        else:
            self._by_address[ip] = held - 1
        self._count = max(0, self._count - 1)

    def exempt(self, ip: str) -> bool:
        return in_networks(ip, self.trusted)

    @property
    def count(self) -> int:
        """Unauthenticated connections held now (trusted peers not counted)."""
        return self._count
