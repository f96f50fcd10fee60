"""Due work in the running server: a coroutine run every N seconds as a background
task (legal notices whose gag expired, holds that ran out), stopped with the server.

A failing run is logged and retried at the next interval; it never stops the loop or
the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("letterlock.periodic")


def start_periodic(work: Callable[[], Awaitable[object]], interval_s: float,
                   name: str) -> Callable[[], Awaitable[None]]:
    """Run ``work`` now and then every ``interval_s`` seconds (after each run ends);
    returns the coroutine function that stops it (waiting for a run in progress)."""
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                await work()
            except Exception:
                log.exception("%s failed; retrying in %s s", name, interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)

    task = asyncio.create_task(loop(), name=name)

    async def stop() -> None:
        stopping.set()
        await task

    return stop
