"""The password-derivation queue: Argon2id runs in a small thread pool whose size bounds
CPU and memory (each derivation holds ``argon2_memory_kib`` while it runs), and the
derivations waiting for a slot are served fairly across clients.

Fair means: when a slot frees, it goes to the waiting client with the fewest
derivations running, ties broken by who was served least recently (round-robin). So
a flood of guesses from one address holds at most its share of the slots, and a login
from another address starts as soon as one slot frees. Each client may have at most
``max_waiting`` derivations waiting; one more is refused with :class:`Busy` (the
front-ends answer "try again later"). Waiting costs nothing but a future.

Clients are keyed by address (:func:`client_key`): an IPv6 client by its /64, the
smallest block a single host is routinely given, so that one host cannot take a
fresh share per address it owns. Throttling and back-off are not done here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from letterlock.errors import Busy

T = TypeVar("T")

LOCAL = "local"
"""The client key of work that comes from no network peer (the command line)."""
DEFAULT_MAX_WAITING = 16


def client_key(peer: str) -> str:
    """The fairness key of a peer address: IPv4 as is, IPv6 by its /64 (an
    IPv4-mapped IPv6 address as the IPv4 one); anything else (a Unix socket, "")
    as given, or :data:`LOCAL` when empty."""
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer or LOCAL
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class KdfRunner:
    """Runs password derivations with bounded concurrency, off the event loop, served
    fairly across clients. Use from one event loop."""

    def __init__(self, max_concurrent: int, max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.slots = max(1, max_concurrent)
        self.max_waiting = max(1, max_waiting)
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="kdf")
        self._running: dict[str, int] = {}
        """client -> derivations holding a slot (running, or handed a slot)."""
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        """client -> its waiters, oldest first; clients in the order they began to
        wait."""
        self._served: dict[str, int] = {}
        """client -> when it last took a slot (a tick of ``_ticks``): the tie-break."""
        self._ticks = 0
        self._busy = 0

    async def run(self, func: Callable[[], T], *, client: str = LOCAL) -> T:
        """Run ``func`` (blocking, CPU-bound) in a slot, once this client's turn has
        come. ``client`` is the peer's address (or a :func:`client_key`). Raises
        Busy if this client already has ``max_waiting`` derivations waiting."""
        key = client_key(client)
        loop = asyncio.get_running_loop()
        if self._busy < self.slots and not self._waiting:
            self._take(key)
        else:
            await self._wait_turn(key, loop)
        try:
            work: ThreadFuture[T] = self._pool.submit(func)
        except BaseException:
            self._release(key)
            raise
        # The slot is freed when the thread is done, not when the caller stops
        # waiting: a derivation keeps its memory until it finishes.
        work.add_done_callback(lambda _: _call_soon(loop, self._release, key))
        return await asyncio.wrap_future(work)

    def waiting(self, client: str) -> int:
        """Derivations of ``client`` waiting for a slot."""
        queue = self._waiting.get(client_key(client))
        return len(queue) if queue else 0

    def running(self, client: str) -> int:
        """Derivations of ``client`` holding a slot."""
        return self._running.get(client_key(client), 0)

    def close(self) -> None:
        for queue in self._waiting.values():
            for waiter in queue:
                waiter.cancel()
        self._waiting.clear()
        self._pool.shutdown(wait=True)

    # -- the queue ---------------------------------------------------------------------
    def _take(self, key: str) -> None:
        self._busy += 1
        self._running[key] = self._running.get(key, 0) + 1
        self._ticks += 1
        self._served[key] = self._ticks

    async def _wait_turn(self, key: str, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._waiting.get(key)
        if queue is not None and len(queue) >= self.max_waiting:
            raise Busy("too many password checks waiting for this client")
        if queue is None:
            queue = self._waiting[key] = deque()
        waiter: asyncio.Future[None] = loop.create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(key)  # handed a slot just as the caller went away
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
                if not queue and self._waiting.get(key) is queue:
                    del self._waiting[key]
            raise

    def _release(self, key: str) -> None:
        count = self._running.get(key, 0) - 1
        if count > 0:
            self._running[key] = count
        else:
            self._running.pop(key, None)
        self._busy -= 1
        nxt = self._next()
        if nxt is not None:
            self._take(nxt)
            queue = self._waiting[nxt]
            queue.popleft().set_result(None)
            if not queue:
                del self._waiting[nxt]
        self._trim_served()

    def _next(self) -> str | None:
        """The waiting client with the fewest derivations running; among those, the
        one served least recently (never served first), then the one waiting longest."""
        if not self._waiting:
            return None
        return min(self._waiting,
                   key=lambda k: (self._running.get(k, 0), self._served.get(k, 0)))

    def _trim_served(self) -> None:
        # Remember only clients that are waiting or running (an idle client's turn
        # is as good as a new one's), so the table does not grow with every address.
        if len(self._served) > 2 * (len(self._waiting) + len(self._running)) + 64:
            self._served = {k: t for k, t in self._served.items()
                            if k in self._waiting or k in self._running}


def _call_soon(loop: asyncio.AbstractEventLoop, func: Callable[[str], None],
               key: str) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits
        loop.call_soon_threadsafe(func, key)
