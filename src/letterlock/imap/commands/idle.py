"""IDLE (RFC 2177): push mailbox changes to the client as they happen, until DONE.

An idle connection holds one extra task (the pending read of DONE); the read's
completion, the mailbox's change notification and the poll timer wake the same
event, so nothing else is allocated while waiting. Content keys the session
remembered (crypto/seal.py Opener) are dropped as it goes idle.
"""

from __future__ import annotations

import asyncio
import contextlib

from letterlock.errors import LetterlockError
from letterlock.imap.commands import updates
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
    await updates.push(ctx)


async def idle(cmd: c.Idle, ctx: Context) -> Reply:
    if ctx.user is not None:
        ctx.user.opener.forget_keys()
    ctx.out.write(b"+ idling\r\n")
    await push_updates(ctx)
    await ctx.out.flush()
    sel = ctx.selected
    notifier = ctx.notifier  # NOTIFY (RFC 5465): its changes wake IDLE too
    wake = (notifier.wake if notifier is not None
            else sel.changed if sel is not None else asyncio.Event())
    reader = asyncio.ensure_future(ctx.read_line())
    reader.add_done_callback(lambda _: wake.set())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(ctx.services.config.idle_timeout_s)
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                # Autologout (RFC 9051 5.4): clients re-issue IDLE well before this.
                ctx.out.untagged(b"BYE Autologout; idle for too long")
                await ctx.out.flush()
                raise ConnectionResetError("autologout")
            # Periodic look for changes made by other processes.
            poll = loop.call_later(min(POLL_S, remaining), wake.set)
            try:
                await wake.wait()
            finally:
                poll.cancel()
            if reader.done():
                line = reader.result()
                if line is None:
                    raise ConnectionResetError
                if line.rstrip(b"\r\n").upper() == b"DONE":
                    await push_updates(ctx)
                    return ok("IDLE terminated")
                return bad("Expected DONE")
            if notifier is not None and ctx.notifier is notifier:
                await notifier.deliver(ctx, in_idle=True)  # clears the event
                ctx.out.flush_nowait()  # a client that does not read overflows
                continue
            if ctx.notifier is None and notifier is not None:
                # NOTIFY went off (overflow): no notifier sets this event any more
                # (the reader's callback sets whichever event ``wake`` names by then)
                notifier, wake = None, asyncio.Event() if sel is None else sel.changed
                if reader.done():
                    wake.set()
            if sel is None:
                wake.clear()
                continue
            await push_updates(ctx)  # clears the event
            await ctx.out.flush()
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
