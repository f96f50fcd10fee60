"""Reading the message after DATA's 354: in large blocks, not line by line, up to the
``<CRLF>.<CRLF>`` that ends it and nothing else, with the size limit enforced while
reading. What the bytes mean (dot-stuffing, bare CR/LF) is ``parse.decode_data``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from letterlock.smtp.limits import DataHold


class DataTooBig(Exception):
    """The message outgrew the size limit; it was read to its end and discarded."""


class DataOverBudget(Exception):
    """Holding the message would have passed the process's budget for message data
    in flight; it was read to its end and discarded."""


async def read_data(reader: asyncio.StreamReader, limit: int,
                    on_block: Callable[[], None], hold: DataHold | None = None) -> bytes:
    """Everything up to the ``<CRLF>.<CRLF>`` that ends DATA, exclusive of the
    final ``.<CRLF>``. Reads in blocks of up to the reader's buffer limit; once the
    message outgrows ``limit`` (0: none), keeps reading (discarding) to the end, then
    raises DataTooBig so the client gets its 552 in step (RFC 5321 4.5.3.1.10).
    Each block kept is taken from ``hold``'s budget; when the budget has no room the
    message is likewise read to its end and DataOverBudget raised (what was taken is
    given back). ``on_block`` is called after each block (the idle timeout keeps
    running)."""
    parts: list[bytes] = []
    total = 0
    too_big = False
    over = False

    def keep(block: bytes) -> None:
        nonlocal over
        if too_big or over:
            return
        if hold is not None and not hold.take(len(block)):
            over = True
            parts.clear()
            hold.release()
            return
        parts.append(block)

    last2 = b"\r\n"  # after the 354 reply the client is at a line start
    while True:
        try:
            chunk = await reader.readuntil(b".\r\n")
            found = True
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(exc.consumed)
            found = False
        on_block()
        if found:
            head = len(chunk) - 3
            before = chunk[head - 2:head] if head >= 2 else (last2 + chunk[:head])[-2:]
            if before == b"\r\n":
                total += head
                if not (limit and total > limit):
                    keep(chunk[:head])
                break
        total += len(chunk)
        if limit and total > limit:
            too_big = True
            parts.clear()
        else:
            keep(chunk)
        last2 = chunk[-2:] if len(chunk) >= 2 else (last2 + chunk)[-2:]
    if too_big or (limit and total > limit):
        if hold is not None:
            hold.release()
        raise DataTooBig
    if over:
        raise DataOverBudget
    return b"".join(parts)
