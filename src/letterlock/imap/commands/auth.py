"""Authentication: LOGIN and AUTHENTICATE (SASL PLAIN, RFC 4616; LOGIN; SASL-IR,
RFC 4959). A successful login unlocks the account key into this connection only."""

from __future__ import annotations

import base64
import binascii

from letterlock.errors import AuthenticationFailed, LetterlockError
from letterlock.imap.context import Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing import commands as c
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.state import State
from letterlock.services.operations.log_events import bind


def _peer(ctx: Context) -> str:
    """The client's address: password checks are queued fairly per address."""
    peer = ctx.out.writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


async def _login(ctx: Context, user: str, password: str, mechanism: str) -> Reply:
    bind(mech=mechanism)  # the service logs the outcome, with the client's address
    try:
        session = await ctx.services.accounts.authenticate(user, password,
                                                           client=_peer(ctx))
    except AuthenticationFailed:
        return no("Authentication failed", "AUTHENTICATIONFAILED")
    except LetterlockError as exc:
        return reply_for(exc)
    ctx.user = session
    ctx.state = State.AUTHENTICATED
    return ok("Logged in", "CAPABILITY " + " ".join(ctx.capabilities()))


async def login(cmd: c.Login, ctx: Context) -> Reply:
    if not ctx.plaintext_login_allowed:
        return no("Use STARTTLS first", "PRIVACYREQUIRED")
    try:
        user, password = cmd.user.decode("utf-8"), cmd.password.decode("utf-8")
    except UnicodeDecodeError:
        return no("Authentication failed", "AUTHENTICATIONFAILED")
    return await _login(ctx, user, password, "LOGIN")


def _b64(data: bytes) -> bytes | None:
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


async def _challenge(ctx: Context, prompt: bytes) -> bytes | Reply:
    ctx.out.write(b"+ " + prompt + b"\r\n")
    await ctx.out.flush()
    line = await ctx.read_line()
    if line is None:
        return bad("connection closed during authentication")
    line = line.rstrip(b"\r\n")
    if line == b"*":
        return bad("Authentication cancelled")
    decoded = _b64(line) if line else b""
    if decoded is None:
        return bad("Invalid base64 in authentication response")
    return decoded


async def authenticate(cmd: c.Authenticate, ctx: Context) -> Reply:
    if cmd.mechanism not in ("PLAIN", "LOGIN"):
        return no(f"Unsupported mechanism {cmd.mechanism}", "CANNOT")
    if not ctx.plaintext_login_allowed:
        return no("Use STARTTLS first", "PRIVACYREQUIRED")
    if cmd.mechanism == "PLAIN":
        if cmd.initial is not None:
            data = _b64(cmd.initial)
            if data is None:
                return bad("Invalid base64 in initial response")
        else:
            got = await _challenge(ctx, b"")
            if isinstance(got, Reply):
                return got
            data = got
        pieces = data.split(b"\x00")
        if len(pieces) != 3:
            return bad("Malformed PLAIN response")
        authzid, authcid, password = pieces
        if authzid and authzid != authcid:
            return no("Authorization identity must match", "AUTHORIZATIONFAILED")
        user_b, pass_b = authcid, password
    else:
        if cmd.initial is not None:
            first = _b64(cmd.initial)
            if first is None:
                return bad("Invalid base64 in initial response")
        else:
            got = await _challenge(ctx, base64.b64encode(b"Username:"))
            if isinstance(got, Reply):
                return got
            first = got
        got = await _challenge(ctx, base64.b64encode(b"Password:"))
        if isinstance(got, Reply):
            return got
        user_b, pass_b = first, got
    try:
        user_text, password_text = user_b.decode("utf-8"), pass_b.decode("utf-8")
    except UnicodeDecodeError:
        return no("Authentication failed", "AUTHENTICATIONFAILED")
    return await _login(ctx, user_text, password_text, cmd.mechanism)
