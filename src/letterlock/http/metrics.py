"""The Prometheus endpoint: ``GET /metrics`` on ``http.metrics_bind``:``http.metrics_port``
(off unless a port is set), served by the main process for every process of the
server (see services/operations/metrics.py).

A small HTTP/1.1 responder of its own, not the API's server: it answers one path,
needs no session, cookie or login, and stays up when the API is busy. Bounded: a
request head larger than 8 KiB or slower than 10 s is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from letterlock.app import App, Stopper
from letterlock.services.operations import metrics

MAX_HEAD_BYTES = 8192
READ_TIMEOUT_S = 10.0


async def _matters(app: App) -> list[metrics.MatterView]:
    return [metrics.MatterView(m.state, m.next_due) for m in await app.legal.list_matters()]


def _audit_entries(app: App) -> int | None:
    log = getattr(app.audit, "log", None)
    size = getattr(log, "size", None)
    return size if isinstance(size, int) else None


async def scrape(app: App) -> bytes:
    """The exposition text for one scrape."""
    state = await metrics.gather_state(app.config.home, lambda: _matters(app),
                                       lambda: _audit_entries(app), asyncio.to_thread)
    return await asyncio.to_thread(metrics.render, app.config.run_dir, state)


def _response(status: str, body: bytes, content_type: str, head_only: bool) -> bytes:
    date = datetime.now().astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nDate: {date}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + (b"" if head_only else body)


async def _serve(app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            reply = _response("405 Method Not Allowed", b"GET only\n", "text/plain", False)
        elif path != "/metrics":
            reply = _response("404 Not Found", b"see /metrics\n", "text/plain", False)
        else:
            reply = _response("200 OK", await scrape(app), metrics.CONTENT_TYPE,
                              method == "HEAD")
        writer.write(reply)
        await writer.drain()
    except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def start_metrics(app: App) -> Stopper:
    """Composition-root entry point: serve ``/metrics`` when ``http.metrics_port`` is
    set; returns the coroutine function that stops it."""
    options = app.config.http
    if not options.metrics_port:
        async def nothing() -> None:
            return None
        return nothing
    server = await asyncio.start_server(lambda r, w: _serve(app, r, w), options.metrics_bind,
                                        options.metrics_port, limit=MAX_HEAD_BYTES)

    async def stop() -> None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    return stop
