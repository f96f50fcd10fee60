"""Hot windows: decoded sealed caches (digest packs, text packs) kept in this
process's memory for the sessions that read the same mailbox, bounded in bytes and
dropped a while after their last use."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HotWindows(Generic[K, V]):
    """At most ``hot_bytes`` of decoded windows (as the subclass's :meth:`hot_size`
    counts them), each dropped ``HOT_TTL_S`` after its last use; a window larger than
    the whole budget is not kept (a scan through an LRU cache would evict what it
    needs next)."""

    HOT_TTL_S = 30.0

    def __init__(self, hot_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hot: OrderedDict[K, tuple[V, float, int]] = OrderedDict()
        self._hot_bytes = hot_bytes
        self._hot_used = 0

    def hot_size(self, value: V) -> int:
        raise NotImplementedError

    def hot_get(self, ident: K) -> V | None:
        now = self._clock()
        self._expire(now)
        hit = self._hot.get(ident)
        if hit is None:
            return None
        self._hot[ident] = (hit[0], now, hit[2])
        self._hot.move_to_end(ident)
        return hit[0]

    def hot_put(self, ident: K, value: V) -> None:
        size = self.hot_size(value)
        old = self._hot.pop(ident, None)
        if old is not None:
            self._hot_used -= old[2]
        if size > self._hot_bytes:
            return
        now = self._clock()
        self._hot[ident] = (value, now, size)
        self._hot_used += size
        self._expire(now)

    def hot_drop(self, ident: K) -> None:
        hit = self._hot.pop(ident, None)
        if hit is not None:
            self._hot_used -= hit[2]

    def _expire(self, now: float) -> None:
        while self._hot:
            ident, (_, used, size) = next(iter(self._hot.items()))
            if self._hot_used <= self._hot_bytes and now - used < self.HOT_TTL_S:
                return
            del self._hot[ident]
            self._hot_used -= size

    def clear(self) -> None:
        """Drop every hot window (shutdown)."""
        self._hot.clear()
        self._hot_used = 0
