"""The heap is trimmed once a burst of work is over (imap/heap.py), once per burst,
never while it goes on."""

from __future__ import annotations

import asyncio
import threading

from letterlock.imap.heap import HeapTrimmer, glibc_malloc_trim


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.threads: list[int] = []

    def __call__(self, pad: int) -> int:
        assert pad == 0
        self.count += 1
        self.threads.append(threading.get_ident())
        return 1


async def test_a_burst_of_notes_trims_once_after_it_ends() -> None:
    calls = Calls()
    trimmer = HeapTrimmer(calls, quiet_s=0.2)
    for _ in range(6):  # busy for 0.3 s: longer than the quiet period
        trimmer.note()
        await asyncio.sleep(0.05)
    assert calls.count == 0
    await asyncio.sleep(0.4)
    assert calls.count == 1
    assert calls.threads[0] != threading.get_ident()  # not on the event loop
    await asyncio.sleep(0.4)
    assert calls.count == 1  # nothing new happened
    trimmer.note()
    await asyncio.sleep(0.4)
    assert calls.count == 2
    trimmer.close()


async def test_closing_cancels_a_pending_trim() -> None:
    calls = Calls()
    trimmer = HeapTrimmer(calls, quiet_s=0.1)
    trimmer.note()
    trimmer.close()
    await asyncio.sleep(0.3)
    assert calls.count == 0


async def test_without_malloc_trim_nothing_is_scheduled() -> None:
    trimmer = HeapTrimmer(None, quiet_s=0.01)
    trimmer.note()
    await asyncio.sleep(0.05)
    trimmer.close()


def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None  # Debian: glibc
    assert trim(0) in (0, 1)
