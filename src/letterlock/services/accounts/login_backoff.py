"""Back-off for password guessing: a client that keeps failing waits longer and longer
before each new password check, so guessing gets slow while the right password stays
usable.

The wait comes before the memory-hard check (:mod:`kdf_queue`) and holds nothing but
the connection: no derivation slot, no memory. It is the largest of three:

- per client and account (``PAIR``): the third failure of one client (an address, an
  IPv6 /64) at one account in ``window_s`` starts it, doubling per failure up to
  ``max_delay_s``. This is the guesser at one mailbox.
- per account (``ACCOUNT``): failures at one account from anywhere (a guesser spread
  over many addresses). A client that logged in to that account lately is exempt, so
  a guesser cannot slow its owner's devices down.
- per client (``CLIENT``): failures of one client at any account (a guesser trying
  many accounts). Capped at ``CLIENT_CAP_S``: a client address is often shared (an
  office behind NAT), and one broken mail program there must not lock the others out
  (issue 13: 100 errors in 60 s from an address must not stop authenticated
  submission from it).

A login the key cache can serve (the right password, lately used) never waits: only
attempts that need the full check do. State is per process and in memory only,
bounded to ``max_entries`` keys per kind (the oldest go first); a restart forgets it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from letterlock.services.accounts.kdf_queue import client_key

BASE_DELAY_S = 0.5
"""The first wait, doubled by each further failure."""
PAIR_FREE = 2
"""Failures of one client at one account before it waits."""
ACCOUNT_FREE = 10
"""Failures at one account, from clients that have not logged in to it lately."""
CLIENT_FREE = 20
"""Failures of one client, at any accounts."""
CLIENT_CAP_S = 2.0
"""The longest wait the per-client count alone imposes (shared addresses)."""
TRUSTED_S = 24 * 3600.0
"""A client that logged in to an account is exempt from that account's count this
long."""
_KEPT_FAILURES = 64
"""Failure times kept per key (enough to reach the largest wait)."""


class _Counts:
    """Failure times per key within the window, for a bounded number of keys."""

    def __init__(self, window_s: float, max_entries: int) -> None:
        self._window_s = window_s
        self._max = max_entries
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        while times and now - times[0] > self._window_s:
            times.popleft()
        if not times:
            del self._times[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=_KEPT_FAILURES)
            while len(self._times) > self._max:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


def _wait(failures: int, free: int, cap: float) -> float:
    if failures <= free:
        return 0.0
    return min(cap, BASE_DELAY_S * 2.0 ** min(failures - free - 1, 30))


class LoginBackoff:
    def __init__(self, max_delay_s: float, *, window_s: float = 900.0,
                 max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._sleep = sleep
        self._pairs = _Counts(window_s, max_entries)
        self._accounts = _Counts(window_s, max_entries)
        self._clients = _Counts(window_s, max_entries)
        self._trusted: OrderedDict[str, float] = OrderedDict()
        self._max_entries = max_entries

    def delay_for(self, client: str, account: str) -> float:
        """Seconds the next full password check of ``client`` at ``account`` waits."""
        if self.max_delay_s <= 0:
            return 0.0
        now = self._clock()
        peer, name = client_key(client), account.lower()
        pair = f"{peer}\x00{name}"
        waits = [_wait(self._pairs.count(pair, now), PAIR_FREE, self.max_delay_s),
                 _wait(self._clients.count(peer, now), CLIENT_FREE,
                       min(CLIENT_CAP_S, self.max_delay_s))]
        trusted = self._trusted.get(pair)
        if trusted is None or now - trusted > TRUSTED_S:
            waits.append(_wait(self._accounts.count(name, now), ACCOUNT_FREE,
                               self.max_delay_s))
        return max(waits)

    async def wait(self, client: str, account: str) -> float:
        """Wait as :meth:`delay_for` says; returns the seconds waited."""
        delay = self.delay_for(client, account)
        if delay > 0:
            await self._sleep(delay)
        return delay

    def failed(self, client: str, account: str) -> None:
        if self.max_delay_s <= 0:
            return
        now = self._clock()
        peer, name = client_key(client), account.lower()
        self._pairs.add(f"{peer}\x00{name}", now)
        self._accounts.add(name, now)
        self._clients.add(peer, now)

    def succeeded(self, client: str, account: str) -> None:
        """The right password: this client's failures at this account are forgotten
        and it is exempt from the account's count for a while. Its failures at other
        accounts stay (a guesser with an account of its own cannot wipe them)."""
        if self.max_delay_s <= 0:
            return
        pair = f"{client_key(client)}\x00{account.lower()}"
        self._pairs.clear(pair)
        self._trusted[pair] = self._clock()
        self._trusted.move_to_end(pair)
        while len(self._trusted) > self._max_entries:
            self._trusted.popitem(last=False)
