"""JSON request bodies as JSON (RFC 8259) defines them, checked before any route sees
them. Python's ``json`` reads more than JSON allows: ``NaN`` and ``Infinity``, a number
such as ``1e999999`` that overflows to infinity, an integer of more than 4,300 digits
(which ``int()`` then refuses with a ValueError), and nesting up to the recursion limit.
Passed on, those became 500s (a validation error cannot render ``inf``) or values no
JSON reader can take back. This middleware answers them with 400 and a short JSON
``detail``; everything else, malformed JSON included, goes on to FastAPI unchanged.
"""

from __future__ import annotations

import json
import math
from email.message import Message
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have."""


class UnacceptableJson(ValueError):
    """A body Python's ``json`` reads but that is not acceptable JSON."""


def _no_constant(name: str) -> Any:
    raise UnacceptableJson(f"JSON has no {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnacceptableJson("JSON number out of range")
    return value


def check_json(body: bytes) -> None:
    """Raise :class:`UnacceptableJson` if ``body`` is JSON Python reads but should not
    accept; return quietly for acceptable JSON and for what is not JSON at all (the
    route's own parser says what is wrong with that)."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except UnacceptableJson:
        raise
    except RecursionError:
        raise UnacceptableJson(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, or int() refusing a long integer
        if isinstance(exc, json.JSONDecodeError):
            return
        raise UnacceptableJson("JSON number too long") from None
    _check_depth(value)


def _check_depth(value: Any) -> None:
    # Iterative: the point is not to recurse on what the client sent.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise UnacceptableJson(f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _is_json(content_type: str | None) -> bool:
    # FastAPI parses a body without a Content-Type as JSON too.
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


class StrictJsonBodies:
    """ASGI middleware: a JSON request body is read, checked with :func:`check_json`,
    and either refused with 400 or handed on to the application as it came."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            if body:
                check_json(body)
        except UnacceptableJson as exc:
            await _refuse(send, str(exc))
            return
        replayed = False

        async def replay() -> AsgiMessage:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Send, detail: str) -> None:
    content = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": content})
