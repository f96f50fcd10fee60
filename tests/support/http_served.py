"""The application's HTTP server on a free loopback port, for tests that use a real
socket (browsers, httpx over TCP)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from letterlock.app import App
from letterlock.http.server import HttpServer


@contextlib.asynccontextmanager
async def served_at(app: App) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while open; yields the base URL."""
    server = HttpServer(app)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()
