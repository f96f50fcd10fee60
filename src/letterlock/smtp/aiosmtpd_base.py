"""aiosmtpd's SMTP protocol, set up lean: what ``aiosmtpd.smtp.SMTP.__init__`` sets up,
without its per-connection introspection of the protocol and its handler. The
listeners in ``protocol`` build on it and keep aiosmtpd's STARTTLS and AUTH exchange.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, _AuthMechAttr


class NoHooks:
    """aiosmtpd looks for ``handle_*`` methods on its handler; ours has none."""


class LeanSmtp(SMTP):
    """``SMTP`` with :meth:`_lean_init` in place of its ``__init__``."""

    def _lean_init(self, *, handler: object, max_message_bytes: int, hostname: str,
                   tls_context: ssl.SSLContext | None, auth: bool, timeout: float) -> None:
        """What ``aiosmtpd.smtp.SMTP.__init__`` sets up, without its per-connection
        introspection (``inspect.getmembers``/``dir`` over the protocol and handler,
        about half a millisecond per connection): the command and AUTH tables depend
        only on the class, so they are computed once per class."""
        loop = asyncio.get_running_loop()
        self.__ident__ = "letterlock ESMTP"
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.event_handler = handler
        self.data_size_limit = max_message_bytes
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = False
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = _never_called
        self._auth_callback = None
        self._auth_required = auth
        self._auth_methods = {
            "PLAIN": _AuthMechAttr(self.auth_PLAIN, True),
            "LOGIN": _AuthMechAttr(self.auth_LOGIN, True),
        } if auth else {}
        self._handle_hooks = {}
        self._ehlo_hook_ver = None
        # Functions, not bound methods: the table is shared by every connection.
        self._smtp_methods = _command_table(cast(Hashable, type(self)))
        self._enforce_call_limit = False


@functools.cache
def _command_table(cls: Hashable) -> dict[str, Callable[[Any, str | None], Awaitable[None]]]:
    """Command verb -> ``smtp_*`` function of ``cls``, computed once per class."""
    return {name[5:]: getattr(cls, name) for name in dir(cls) if name.startswith("smtp_")}


def _never_called(*_args: object) -> AuthResult:
    # aiosmtpd's synchronous authenticator hook; our auth_* methods bypass it.
    return AuthResult(success=False)
