"""SMTP AUTH (RFC 4954) on a connection: the PLAIN and LOGIN exchanges are aiosmtpd's
way of asking; checking the credentials is the handler's, and too many failures
close the connection. A part of :class:`~letterlock.smtp.protocol.SmtpListener`."""

from __future__ import annotations

import base64
import binascii

from aiosmtpd.smtp import AuthResult

from letterlock.errors import Busy
from letterlock.services.accounts.accounts import Session
from letterlock.services.operations.log_events import LogEvent, bind, event
from letterlock.smtp import replies
from letterlock.smtp.aiosmtpd_base import LeanSmtp
from letterlock.smtp.hooks import PeerInfo, SmtpHandler
from letterlock.smtp.limits import ClientLimits
from letterlock.smtp.replies import Reply


class SmtpAuth(LeanSmtp):
    """The AUTH command and its mechanisms, for the listener that has the rest."""

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"
    _handler: SmtpHandler
    _identity: Session | None
    _auth_failures: int
    _limits: ClientLimits
    _ip: str

    def peer(self) -> PeerInfo:
        raise NotImplementedError

    async def reply(self, reply: Reply) -> None:
        raise NotImplementedError

    async def _close_with(self, reply: Reply | None) -> None:
        raise NotImplementedError

    async def smtp_AUTH(self, arg: str | None) -> None:
        """RFC 4954 AUTH, as aiosmtpd's but for the outcome: aiosmtpd 1.4 also sets
        the deprecated ``Session.login_data`` on every success, which logs a warning
        each time (aio-libs/aiosmtpd#347). Here a mechanism's :class:`AuthResult` is
        recorded with the current API only: ``session.authenticated`` and
        ``session.auth_data``."""
        assert self.session is not None
        if not self.session.host_name:
            await self.push("503 Error: send EHLO first")
            return
        if not self.session.extended_smtp:
            await self.push("500 Error: command 'AUTH' not recognized")
            return
        if self._auth_require_tls and not self._tls_protocol:
            await self.push("538 5.7.11 Encryption required for requested "
                            "authentication mechanism")
            return
        if self.session.authenticated:
            await self.push("503 Already authenticated")
            return
        args = arg.split() if arg else []
        if not args:
            await self.push("501 Not enough value")
            return
        if len(args) > 2:
            await self.push("501 Too many values")
            return
        mechanism = self._auth_methods.get(args[0].upper())
        if mechanism is None:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        result = await mechanism.method(self, args)
        if result.success:
            self.session.authenticated = True
            self.session.auth_data = result.auth_data
            await self.push(result.message or str(replies.AUTH_OK))
        elif not result.handled:
            await self.push(result.message or str(replies.AUTH_FAILED))

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        bind(mech="PLAIN")
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split AUTH PLAIN response")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid != login:
            return await self._auth_failed()
        return await self._check_credentials(login, password)

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        bind(mech="LOGIN")
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check_credentials(login, password)

    async def _check_credentials(self, login: bytes, password: bytes) -> AuthResult:
        try:
            user, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return await self._auth_failed()
        try:
            identity = await self._handler.authenticate(self.peer(), user, secret)
        except Busy:  # this address has too many password checks waiting
            await self.reply(replies.AUTH_TRY_LATER)
            return AuthResult(success=False, handled=True)
        if identity is None:
            return await self._auth_failed()
        self._identity = identity
        return AuthResult(success=True, auth_data=identity.address)

    async def _auth_failed(self) -> AuthResult:
        self._auth_failures += 1
        await self.reply(replies.AUTH_FAILED)
        if self._auth_failures >= self._limits.settings.max_auth_failures:
            event(LogEvent.CLIENT_REFUSED, ip=self._ip, limit="auth-failures")
            await self._close_with(replies.TOO_MANY_ERRORS)
        return AuthResult(success=False, handled=True)
