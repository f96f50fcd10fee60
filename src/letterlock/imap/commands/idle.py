"""IDLE (RFC 2177): push mailbox changes to the client as they happen, until DONE."""

from __future__ import annotations

import asyncio
import contextlib

from letterlock.errors import LetterlockError
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.reply import Reply, bad, ok

POLL_S = 30.0
"""Look for changes at least this often even without a local notification (changes
made by other processes)."""


async def push_updates(ctx: Context) -> None:
    sel = ctx.selected
    if sel is None or ctx.user is None:
        return
    try:
        lines = await sel.refresh(ctx.user, ctx.services.mailboxes, allow_expunge=True,
                                  condstore=ctx.condstore, qresync=ctx.qresync)
    except LetterlockError:
        return
    for line in lines:
        ctx.out.untagged(line)


async def idle(cmd: c.Idle, ctx: Context) -> Reply:
    ctx.out.write(b"+ idling\r\n")
    await push_updates(ctx)
    await ctx.out.flush()
    reader = asyncio.ensure_future(ctx.read_line())
    timeout = float(ctx.services.config.idle_timeout_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            sel = ctx.selected
            waiters: set[asyncio.Future[object]] = {reader}  # type: ignore[arg-type]
            changed = None
            if sel is not None:
                changed = asyncio.ensure_future(sel.changed.wait())
                waiters.add(changed)  # type: ignore[arg-type]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait(waiters, timeout=min(POLL_S, remaining),
                                         return_when=asyncio.FIRST_COMPLETED)
            if changed is not None and not changed.done():
                changed.cancel()
            if reader in done:
                line = reader.result()
                if line is None:
                    raise ConnectionResetError
                if line.rstrip(b"\r\n").upper() == b"DONE":
                    return ok("IDLE terminated")
                return bad("Expected DONE")
            if sel is not None and not done:
                sel.changed.set()  # periodic check for changes from other processes
            await push_updates(ctx)
            await ctx.out.flush()
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
