"""Connection policy: plaintext authentication only over TLS or loopback, and the
autologout timer for silent unauthenticated connections."""

from __future__ import annotations

import asyncio
import dataclasses

from imap_script import Imap, ScriptClient

from letterlock.imap.context import Context, Output, Services
from letterlock.imap.selected import RecentClaims
from letterlock.imap.server import ImapServer


def _context(imap: Imap, *, tls: bool, loopback: bool) -> Context:
    services = Services(imap.app.accounts, imap.app.mailboxes, imap.app.config.imap,
                        asyncio.Semaphore(1), RecentClaims())

    async def no_input() -> bytes | None:
        return None

    return Context(services, Output(None), tls=tls, loopback=loopback,  # type: ignore[arg-type]
                   can_starttls=True, read_line=no_input)


async def test_login_disabled_in_the_clear_from_a_remote_address(imap: Imap) -> None:
    remote = _context(imap, tls=False, loopback=False)
    caps = remote.capabilities()
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps
    assert not any(c.startswith("AUTH=") for c in caps)
    secured = _context(imap, tls=True, loopback=False)
    caps = secured.capabilities()
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps


async def test_silent_unauthenticated_connection_is_logged_out(imap: Imap) -> None:
    config = dataclasses.replace(imap.app.config.imap, login_timeout_s=1)
    server = ImapServer(imap.app.accounts, imap.app.mailboxes, config, None)
    await server.start("127.0.0.1", 0)
    try:
        assert server.port is not None
        c = await ScriptClient.connect(server.port)
        line = await c.response(timeout=3)
        assert line.startswith(b"* BYE Autologout")
        assert await c.reader.read() == b""
    finally:
        await server.close()
