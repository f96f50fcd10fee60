"""The ManageSieve commands (RFC 5804 2), each mapped onto the filter service; domain
errors become NO with RFC 5804's response codes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Protocol

from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Busy,
    InvalidInput,
    LetterlockError,
    NotFound,
    QuotaExceeded,
)
from letterlock.managesieve.parsing import quote, response
from letterlock.managesieve.session import SieveSession
from letterlock.services.mail.filters.scripts import ScriptActive, ScriptInvalid, ScriptTooBig
from letterlock.services.operations.log_events import bind


class Io(Protocol):
    """The connection, for a command that talks back and forth (AUTHENTICATE)."""

    async def send(self, data: bytes) -> None:
        ...

    async def read(self) -> list[object] | None:
        ...

ANONYMOUS = frozenset({"CAPABILITY", "AUTHENTICATE", "LOGOUT", "NOOP", "STARTTLS"})


class Listener(Protocol):
    def capabilities(self, *, tls: bool, plaintext_ok: bool) -> bytes:
        ...


class Bad(Exception):
    """Wrong arguments: NO with this text."""


def _strings(args: list[object], count: int, name: str) -> list[str]:
    if len(args) != count or not all(isinstance(a, str) for a in args):
        raise Bad(f"{name} takes {count} string argument{'s' if count != 1 else ''}")
    return [a for a in args if isinstance(a, str)]


def _error(exc: LetterlockError) -> bytes:
    if isinstance(exc, ScriptTooBig):
        return response("NO", str(exc), "QUOTA/MAXSIZE")
    if isinstance(exc, QuotaExceeded):
        return response("NO", str(exc), "QUOTA")
    if isinstance(exc, ScriptActive):
        return response("NO", str(exc), "ACTIVE")
    if isinstance(exc, NotFound):
        return response("NO", "There is no script by that name", "NONEXISTENT")
    if isinstance(exc, AlreadyExists):
        return response("NO", "A script by that name already exists", "ALREADYEXISTS")
    if isinstance(exc, Busy):
        return response("NO", "Too busy, try again later", "TRYLATER")
    if isinstance(exc, ScriptInvalid | InvalidInput):
        return response("NO", str(exc))
    return response("NO", "The request failed, try again later", "TRYLATER")


async def run(session: SieveSession, name: str, args: list[object], io: Io,
              listener: Listener) -> bytes:
    """The reply to one command (its whole output, final line included)."""
    if session.ref is None and name not in ANONYMOUS:
        if name in HANDLERS:
            return response("NO", "Log in first (AUTHENTICATE)")
        return response("NO", f"Unknown command {name[:20]}")
    try:
        if name == "CAPABILITY":
            if args:
                raise Bad("CAPABILITY takes no arguments")
            return listener.capabilities(tls=session.tls, plaintext_ok=session.plaintext_ok)
        if name == "STARTTLS":
            return response("NO", "TLS is already active" if session.tls else
                            "STARTTLS is only allowed before logging in"
                            if session.ref is not None else "STARTTLS is not available")
        handler = HANDLERS.get(name)
        if handler is None:
            return response("NO", f"Unknown command {name[:20]}")
        return await handler(session, args, io)
    except Bad as exc:
        return response("NO", str(exc))
    except LetterlockError as exc:
        return _error(exc)


Handler = Callable[[SieveSession, list[object], Io], Awaitable[bytes]]


async def _authenticate(session: SieveSession, args: list[object], io: Io) -> bytes:
    if session.ref is not None:
        return response("NO", "Already authenticated")
    if not args or not isinstance(args[0], str) or len(args) > 2 \
            or (len(args) == 2 and not isinstance(args[1], str)):
        raise Bad("AUTHENTICATE takes a mechanism name and an optional initial response")
    if args[0].upper() != "PLAIN":
        return response("NO", "Only PLAIN is supported")
    if not session.plaintext_ok:
        return response("NO", "Use STARTTLS first", "ENCRYPT-NEEDED")
    bind(mech="PLAIN")  # the accounts service logs the outcome with it
    if len(args) == 2:
        return await _plain(session, str(args[1]))
    # RFC 5804 2.1: an empty challenge; the client answers with one string.
    await io.send(quote("") + b"\r\n")
    words = await io.read()
    if not words or len(words) != 1 or not isinstance(words[0], str):
        return response("NO", "Expected the PLAIN response as one string")
    return await _plain(session, words[0])


async def _plain(session: SieveSession, answer: str) -> bytes:
    if answer == "*":
        return response("NO", "Authentication cancelled")
    try:
        decoded = base64.b64decode(answer.encode("ascii"), validate=True).decode("utf-8")
        authz, user, password = decoded.split("\0")
    except (ValueError, UnicodeError, binascii.Error):
        return response("NO", "Malformed PLAIN response")
    if authz and authz != user:
        return response("NO", "Acting as another user is not supported")
    try:
        owner = await session.accounts.authenticate(user, password, client=session.ip)
    except (AuthenticationFailed, InvalidInput):
        return response("NO", "Authentication failed")
    session.owner = owner
    bind(user=owner.address)
    return response("OK", "Logged in")


async def _havespace(session: SieveSession, args: list[object], _: Io) -> bytes:
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], int):
        raise Bad("HAVESPACE takes a script name and a size")
    assert session.ref is not None
    await session.filters.have_space(session.ref, args[0], args[1])
    return response("OK")


async def _putscript(session: SieveSession, args: list[object], _: Io) -> bytes:
    name, text = _strings(args, 2, "PUTSCRIPT")
    assert session.owner is not None
    await session.filters.put(session.owner, name, text)
    return response("OK", "Stored")


async def _checkscript(session: SieveSession, args: list[object], _: Io) -> bytes:
    (text,) = _strings(args, 1, "CHECKSCRIPT")
    session.filters.check(text)
    return response("OK")


async def _listscripts(session: SieveSession, args: list[object], _: Io) -> bytes:
    if args:
        raise Bad("LISTSCRIPTS takes no arguments")
    assert session.ref is not None
    out = b"".join(quote(s.name) + (b" ACTIVE" if s.active else b"") + b"\r\n"
                   for s in await session.filters.list(session.ref))
    return out + response("OK")


async def _setactive(session: SieveSession, args: list[object], _: Io) -> bytes:
    (name,) = _strings(args, 1, "SETACTIVE")
    assert session.owner is not None
    await session.filters.activate(session.owner, name or None)
    return response("OK")


async def _getscript(session: SieveSession, args: list[object], _: Io) -> bytes:
    (name,) = _strings(args, 1, "GETSCRIPT")
    assert session.owner is not None
    data = (await session.filters.get(session.owner, name)).encode("utf-8")
    return b"{%d}\r\n" % len(data) + data + b"\r\n" + response("OK")


async def _deletescript(session: SieveSession, args: list[object], _: Io) -> bytes:
    (name,) = _strings(args, 1, "DELETESCRIPT")
    assert session.owner is not None
    await session.filters.delete(session.owner, name)
    return response("OK")


async def _renamescript(session: SieveSession, args: list[object], _: Io) -> bytes:
    old, new = _strings(args, 2, "RENAMESCRIPT")
    assert session.owner is not None
    await session.filters.rename(session.owner, old, new)
    return response("OK")


async def _noop(session: SieveSession, args: list[object], _: Io) -> bytes:
    if len(args) > 1 or (args and not isinstance(args[0], str)):
        raise Bad("NOOP takes an optional string")
    if args:
        return response("OK", "Done", "TAG " + quote(str(args[0])).decode("utf-8"))
    return response("OK", "Done")


async def _unauthenticate(session: SieveSession, args: list[object], _: Io) -> bytes:
    if args:
        raise Bad("UNAUTHENTICATE takes no arguments")
    session.owner = None
    return response("OK")


async def _logout(session: SieveSession, args: list[object], _: Io) -> bytes:
    session.ended = True
    return response("OK", "Logout")


HANDLERS: dict[str, Handler] = {
    "AUTHENTICATE": _authenticate,
    "HAVESPACE": _havespace,
    "PUTSCRIPT": _putscript,
    "CHECKSCRIPT": _checkscript,
    "LISTSCRIPTS": _listscripts,
    "SETACTIVE": _setactive,
    "GETSCRIPT": _getscript,
    "DELETESCRIPT": _deletescript,
    "RENAMESCRIPT": _renamescript,
    "NOOP": _noop,
    "UNAUTHENTICATE": _unauthenticate,
    "LOGOUT": _logout,
}

