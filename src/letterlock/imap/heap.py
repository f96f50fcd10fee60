"""Giving freed heap memory back to the system once a burst of work is over.

glibc's malloc keeps what it got from the system after it is freed, unless it lies at
the top of the heap: the pages that large responses or a burst of SELECTs touched
stay resident behind the few long-lived allocations made meanwhile, though malloc
would reuse them. Measured on `letterlock serve` (bench/imap.py, and
tests/imap/test_imap_idle_memory.py): 150 connections over TLS that each fetched a
256 KiB message and went idle left ~139 KiB resident per connection, ~36 once
trimmed; a burst of 200 SELECTs of a 10,000-message mailbox ~1 MiB.
``malloc_trim(0)`` returns the free pages of every arena to the system (madvise; the
address space stays).

:class:`HeapTrimmer` calls it once the server has been quiet for a moment, in a
thread, at most once per quiet period. Without glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

QUIET_S = 2.0
"""Trim this long after the last activity noted."""

Trim = Callable[[int], object]


def glibc_malloc_trim() -> Trim | None:
    """``malloc_trim`` from the C library the process runs on, if it has one."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


class HeapTrimmer:
    """Trims the heap QUIET_S after the last :meth:`note` of a burst (a command
    answered, a connection gone)."""

    __slots__ = ("_handle", "_last", "_quiet_s", "_running", "_trim")

    def __init__(self, trim: Trim | None, quiet_s: float = QUIET_S) -> None:
        self._trim = trim
        self._quiet_s = quiet_s
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[object] | None = None

    def note(self) -> None:
        """Something allocated and freed memory; trim once things are quiet."""
        if self._trim is None:
            return
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._handle is None:
            self._handle = loop.call_at(self._last + self._quiet_s, self._due)

    def _due(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_at = self._last + self._quiet_s
        if loop.time() < quiet_at or self._running is not None:
            # Still busy (or the last trim still runs): look again later.
            self._handle = loop.call_at(max(quiet_at, loop.time() + self._quiet_s / 4),
                                        self._due)
            return
        self._handle = None
        assert self._trim is not None
        self._running = loop.run_in_executor(None, self._trim, 0)
        self._running.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[object]) -> None:
        self._running = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("malloc_trim failed: %s", future.exception())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
