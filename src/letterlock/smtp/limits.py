"""Per-client-address limits shared by every listener of one server: concurrent
connections, a command rate, and a recent-error budget after which new connections
are refused for a while (a client that keeps guessing addresses or passwords is
slowed down).

Trusted networks (``smtp.trusted_networks``: loopback by default, and wherever the
operator's own MTAs live) are not held to the command rate on the LMTP and
submission listeners, nor is a submission session once it has authenticated: a
front MTA hands over mail as fast as it can, and a user's own program sends what
its user wrote. Mail from the internet (the MX listener) is always metered. A peer
on the LMTP Unix socket is a process on this machine: it counts as loopback (trusted
when 127.0.0.1 is), and all such peers share one connection count (address "")."""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from letterlock.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))
LOCAL_PEER = "127.0.0.1"
"""The address a Unix-socket peer is judged as (see above)."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDR blocks (a bare address is a block of one). Raises
    ConfigError naming the entry that is not one."""
    out: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"smtp.trusted_networks: {item!r} is not a network "
                              "(expected CIDR such as 10.0.0.0/8 or 2001:db8::/32)") from exc
    return tuple(out)


def in_networks(ip: str, networks: tuple[Network, ...]) -> bool:
    """Whether the peer address ``ip`` (IPv4-mapped IPv6 counts as IPv4) is in one
    of ``networks``."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


@dataclass(frozen=True)
class LimitSettings:
    max_connections_per_ip: int = 20
    """Concurrent connections from one address."""
    max_errors_per_session: int = 20
    """Error replies (4xx/5xx) in one session before it is closed with 421."""
    max_auth_failures: int = 3
    """Failed AUTH attempts in one session before it is closed."""
    max_errors_per_window: int = 100
    """Error replies from one address within ``error_window_s`` before its new
    connections are refused (421) until the window moves on."""
    error_window_s: float = 60.0
    commands_per_second: float = 1000.0
    """Sustained SMTP commands per second from one address (all its connections)."""
    command_burst: int = 10_000
    """Commands one address may send in a burst above the sustained rate."""
    max_recipients: int = 1000
    """RCPT commands accepted per transaction (more get 452 4.5.3)."""
    timeout_s: float = 300.0
    """Idle seconds before a session is closed (RFC 5321 4.5.3.2 suggests 5 minutes)."""
    trusted_networks: tuple[Network, ...] = LOOPBACK
    """Peers not held to the command rate on LMTP and submission (see above)."""
    max_data_in_flight: int = 256 * 1024 * 1024
    """Bytes of message data all sessions of this process may hold at once, from the
    first block read after DATA until the message is stored or refused (0: no
    bound). A message that would pass it is read to its end, discarded and answered
    452 4.3.1, so the sender tries again later."""


class DataBudget:
    """The message data held by this process's sessions at once (see
    ``LimitSettings.max_data_in_flight``). A session takes what it reads, block by
    block, and gives it all back when its message has been stored or refused.
    Nothing waits for room: a session holding part of a message while waiting for
    others to finish could wait for ever on sessions doing the same."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def hold(self) -> DataHold:
        return DataHold(self)


class DataHold:
    """What one message holds of a :class:`DataBudget`."""

    __slots__ = ("budget", "held")

    def __init__(self, budget: DataBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes; False (holding nothing more) if that would pass
        the budget."""
        budget = self.budget
        if budget.limit and budget.used + size > budget.limit:
            return False
        budget.used += size
        self.held += size
        return True

    def release(self) -> None:
        self.budget.used -= self.held
        self.held = 0


@dataclass
class _Client:
    connections: int = 0
    errors: deque[float] = field(default_factory=deque)
    tokens: float | None = None
    refilled: float = 0.0


class ClientLimits:
    def __init__(self, settings: LimitSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._clients: dict[str, _Client] = {}
        self.data = DataBudget(settings.max_data_in_flight)

    def _prune(self, ip: str, client: _Client) -> None:
        horizon = self._clock() - self.settings.error_window_s
        while client.errors and client.errors[0] < horizon:
            client.errors.popleft()
        if client.connections == 0 and not client.errors:
            self._clients.pop(ip, None)

    def connect(self, ip: str, *, error_budget: bool = True) -> bool:
        """Count a new connection from ``ip``; False if it must be refused (and then
        it is not counted). ``error_budget``: refuse an address whose recent errors
        used up ``max_errors_per_window``. Submission passes False: its users must
        authenticate, guessing is slowed where passwords are checked (the login
        back-off, services/accounts/login_backoff.py), and an address shared by many
        (an office behind NAT) must not lose its outgoing mail to one broken
        program's errors."""
        client = self._clients.setdefault(ip, _Client())
        self._prune(ip, client)
        if client.connections >= self.settings.max_connections_per_ip \
                or (error_budget
                    and len(client.errors) >= self.settings.max_errors_per_window):
            return False
        client.connections += 1
        self._clients[ip] = client
        return True

    def disconnect(self, ip: str) -> None:
        client = self._clients.get(ip)
        if client is not None:
            client.connections = max(0, client.connections - 1)
            self._prune(ip, client)

    def error(self, ip: str) -> None:
        client = self._clients.setdefault(ip, _Client())
        client.errors.append(self._clock())
        self._prune(ip, client)

    def command(self, ip: str) -> bool:
        """Spend one command from ``ip``'s budget (a token bucket); False when the
        address is over its rate and the command must be refused."""
        client = self._clients.setdefault(ip, _Client())
        now = self._clock()
        burst = float(self.settings.command_burst)
        if client.tokens is None:
            client.tokens = burst
        else:
            client.tokens = min(burst, client.tokens
                                + (now - client.refilled) * self.settings.commands_per_second)
        client.refilled = now
        if client.tokens < 1.0:
            return False
        client.tokens -= 1.0
        return True

    def trusted(self, ip: str) -> bool:
        """Whether ``ip`` is in the trusted networks."""
        return in_networks(ip, self.settings.trusted_networks)

    def local_trusted(self) -> bool:
        """Whether a peer on this machine without an address (a Unix socket) is
        trusted: as loopback is."""
        return in_networks(LOCAL_PEER, self.settings.trusted_networks)

    def connections(self, ip: str) -> int:
        client = self._clients.get(ip)
        return client.connections if client else 0
