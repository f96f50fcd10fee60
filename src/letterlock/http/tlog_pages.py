"""The audit log in the standard transparency-log formats, no login (c2sp.org):

    GET /log/tlog/checkpoint             the signed checkpoint (signed note), with the
                                         witnesses' cosignatures of that tree
    GET /log/tlog/tile/<L>/<N>[.p/<W>]   hash tiles (tlog-tiles, height 8)
    GET /log/tlog/tile/entries/<N>[.p/<W>]  entry bundles (each leaf: uint16 length, bytes)
    GET /log/tlog/key                    the log's verifier key (name+id+base64)
    GET /log/consistency.json?old=M      an RFC 6962 consistency proof from size M to
                                         the current head (what the privacy center uses)

The prefix of the tiles API is ``/log/tlog`` and the checkpoint's origin is
``<server.hostname>/log/tlog``. Full tiles never change (cached for a year); the
checkpoint and partial tiles are not cached.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

import asyncio
import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

from letterlock.audit import tiles, witness
from letterlock.audit.keys import load_private_key
from letterlock.audit.log import open_reader
from letterlock.errors import InvalidInput, LetterlockError, NotFound

PREFIX = tiles.PREFIX
IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = "no-store"
T = TypeVar("T")


class TlogSource:
    """One read-only view of the log and its tile server, refreshed per request."""

    def __init__(self, audit_dir: Path, origin: str) -> None:
        self._dir = audit_dir
        self._origin = origin
        self._server: tiles.TileServer | None = None
        self._lock = threading.Lock()

    def run(self, action: Callable[[tiles.TileServer], T]) -> T:
        """Blocking: call through ``asyncio.to_thread``."""
        with self._lock:
            if self._server is None:
                log = open_reader(self._dir)
                self._server = tiles.TileServer(log, load_private_key(self._dir), self._origin)
            else:
                self._server.log.refresh()
            return action(self._server)

    @property
    def directory(self) -> Path:
        return self._dir

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.log.close()
                self._server = None


def install_tlog_routes(api: FastAPI, audit_dir: Path, hostname: str) -> TlogSource:
    router = APIRouter(include_in_schema=False)
    source = TlogSource(audit_dir, tiles.origin_for(hostname))

    async def serve(action: Callable[[tiles.TileServer], bytes | str], media: str,
                    cache: str) -> Response:
        try:
            body = await asyncio.to_thread(source.run, action)
        except (NotFound, InvalidInput) as exc:
            return Response(f"{exc}\n", 404, media_type="text/plain; charset=utf-8")
        except LetterlockError:
            return Response("the audit log is unavailable\n", 503,
                            media_type="text/plain; charset=utf-8")
        return Response(body, media_type=media, headers={"Cache-Control": cache})

    @router.get(PREFIX + "/checkpoint")
    async def checkpoint() -> Response:
        return await serve(
            lambda t: witness.cosigned_checkpoint(audit_dir, t.checkpoint()),
            "text/plain; charset=utf-8", NO_STORE)

    @router.get(PREFIX + "/key")
    async def key() -> Response:
        return await serve(lambda t: t.verifier_key + "\n", "text/plain; charset=utf-8",
                           NO_STORE)

    @router.get(PREFIX + "/tile/{level}/{path:path}")
    async def tile(level: str, path: str) -> Response:
        try:
            index, width = tiles.parse_index(path)
            number = None if level == "entries" else tiles.parse_level(level)
        except InvalidInput as exc:
            return Response(f"{exc}\n", 404, media_type="text/plain; charset=utf-8")
        cache = IMMUTABLE if width == tiles.WIDTH else NO_STORE
        if number is None:
            return await serve(lambda t: t.entries(index, width), "application/octet-stream",
                               cache)
        return await serve(lambda t: t.tile(number, index, width), "application/octet-stream",
                           cache)

    @router.get("/log/consistency.json")
    async def consistency(old: int) -> Response:
        def prove(t: tiles.TileServer) -> dict[str, Any]:
            head = t.log.head()
            if not 0 <= old <= head.tree_size:
                raise NotFound(f"no consistency proof from size {old} to {head.tree_size}")
            return {"old_size": old, "head": head.to_json(),
                    "proof": [base64.b64encode(h).decode("ascii")
                              for h in t.log.consistency_proof(old, head.tree_size)]}
        try:
            doc = await asyncio.to_thread(source.run, prove)
        except NotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except LetterlockError:
            return JSONResponse({"detail": "the audit log is unavailable"}, status_code=503)
        return JSONResponse(doc, headers={"Cache-Control": NO_STORE})

    api.include_router(router)
    return source
