"""Operator accounts: the people who run letterlock, with one role each.

    admin     manages the service and operators; may act on legal matters
    legal     files, decides and closes legal matters
    auditor   reads legal matters, changes nothing

No role reads mail: operators hold no mailbox key, and no operator function returns
message content. Passwords are hashed with Argon2id (the same cost settings as mail
passwords, run through the application's bounded :class:`KdfRunner`). For HTTP use an
operator exchanges the password for a bearer token (random, 256 bits, stored only as
its SHA-256, valid for ``token_lifetime``), so one Argon2id derivation serves a whole
working session. Operator password checks run one at a time: a flood of guesses at the
operator login can take at most one of the shared KDF slots, never the mail logins'.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.crypto.keys import KdfParams
from letterlock.errors import AuthenticationFailed, Busy, InvalidInput, NotFound
from letterlock.services.accounts.accounts import MIN_PASSWORD_LENGTH
from letterlock.services.accounts.kdf_queue import LOCAL, KdfRunner
from letterlock.services.operations import log_events
from letterlock.services.operations.log_events import LogEvent
from letterlock.storage.operators_sqlite import OperatorRow, OperatorStore, TokenRow

ROLES = ("admin", "legal", "auditor")
TOKEN_LIFETIME = timedelta(hours=12)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DUMMY_SALT = b"letterlock-operator-dummy-salt"


@dataclass(frozen=True)
class Operator:
    name: str
    role: str
    created: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    """The bearer token; shown once, stored only as a digest."""
    operator: Operator
    expires: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def check_name(name: str) -> str:
    """Operator names: lower-case letters, digits, ``.``, ``_``, ``-``; at most 64."""
    text = name.strip().lower()
    if not _NAME.match(text):
        raise InvalidInput(f"invalid operator name {name!r}: use lower-case letters, digits, "
                           "'.', '_' or '-' (at most 64)")
    return text


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def hash_password(password: str, params: KdfParams) -> str:
    """An Argon2id PHC string (random 16-byte salt). Blocking: run it in the KdfRunner."""
    kdf = Argon2id(salt=secrets.token_bytes(16), length=32, iterations=params.iterations,
                   lanes=params.lanes, memory_cost=params.memory_kib)
    return kdf.derive_phc_encoded(password.encode())


def password_matches(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against a PHC string. Blocking."""
    try:
        Argon2id.verify_phc_encoded(password.encode(), encoded)
    except InvalidKey:
        return False
    return True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class OperatorService:
    def __init__(self, store: OperatorStore, kdf: KdfRunner, params: KdfParams,
                 audit: AuditSink, *, token_lifetime: timedelta = TOKEN_LIFETIME,
                 clock: Callable[[], datetime] = _now) -> None:
        self._store = store
        self._kdf = kdf
        self._params = params
        self._audit = audit
        self._lifetime = token_lifetime
        self._clock = clock
        self._dummy: str | None = None
        self._checking = asyncio.Semaphore(1)

    async def add(self, name: str, role: str, password: str, *,
                  actor: str = "operator") -> Operator:
        """Create an operator. Raises InvalidInput or AlreadyExists."""
        name = check_name(name)
        check_role(role)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        encoded = await self._kdf.run(lambda: hash_password(password, self._params))
        row = OperatorRow(name, role, encoded, self._clock())
        await self._store.add(row)
        await self._audit.record(AuditEvent(EventType.ADMIN_OPERATOR_ADDED, actor,
                                            row.created, details=(("operator", name),
                                                                  ("role", role))))
        return Operator(name, role, row.created)

    async def remove(self, name: str, *, actor: str = "operator") -> None:
        """Remove an operator; its API tokens stop working at once (matters it filed
        or decided keep its name). Raises NotFound."""
        name = check_name(name)
        await self._store.remove(name)
        await self._audit.record(AuditEvent(EventType.ADMIN_OPERATOR_REMOVED, actor,
                                            self._clock(), details=(("operator", name),)))

    async def set_password(self, name: str, password: str, *,
                           actor: str = "operator") -> None:
        """Give an operator a new password; its API tokens stop working at once.
        Raises NotFound or InvalidInput."""
        name = check_name(name)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        encoded = await self._kdf.run(lambda: hash_password(password, self._params))
        await self._store.set_password(name, encoded)
        await self._audit.record(AuditEvent(EventType.ADMIN_OPERATOR_PASSWORD_SET, actor,
                                            self._clock(), details=(("operator", name),)))

    async def list(self) -> list[Operator]:
        return [Operator(r.name, r.role, r.created) for r in await self._store.list()]

    async def get(self, name: str) -> Operator:
        row = await self._store.get(name)
        if row is None:
            raise NotFound(f"no operator {name}")
        return Operator(row.name, row.role, row.created)

    async def authenticate(self, name: str, password: str, *,
                           client: str = LOCAL) -> Operator:
        """Check a password; ``client`` is the peer's address (the check is queued
        fairly with every other password check). Raises AuthenticationFailed (after
        the same work whether or not the operator exists), or Busy. Each outcome is
        one log line."""
        try:
            operator = await self._authenticate(name, password, client)
        except AuthenticationFailed:
            # A name that is no operator is not written: it may be a password typed
            # in the wrong field.
            known = await self._store.get(name.strip().lower()) is not None
            log_events.event(LogEvent.LOGIN_FAILED, ip=client,
                             operator=name.strip().lower() if known else "?")
            raise
        except Busy:
            log_events.event(LogEvent.CLIENT_REFUSED, ip=client, limit="password-checks")
            raise
        log_events.event(LogEvent.LOGIN_OK, ip=client, operator=operator.name)
        return operator

    async def _authenticate(self, name: str, password: str, client: str) -> Operator:
        row = await self._store.get(name.strip().lower())
        async with self._checking:
            if row is None:
                if self._dummy is None:
                    self._dummy = await self._kdf.run(
                        lambda: hash_password(secrets.token_hex(8), self._params),
                        client=client)
                dummy = self._dummy
                await self._kdf.run(lambda: password_matches(password, dummy), client=client)
                raise AuthenticationFailed("authentication failed")
            encoded = row.password
            if not await self._kdf.run(lambda: password_matches(password, encoded),
                                       client=client):
                raise AuthenticationFailed("authentication failed")
        return Operator(row.name, row.role, row.created)

    async def issue_token(self, name: str, password: str, *,
                          client: str = LOCAL) -> IssuedToken:
        """Exchange a password for a bearer token. Raises AuthenticationFailed."""
        operator = await self.authenticate(name, password, client=client)
        now = self._clock()
        await self._store.purge_tokens(now)
        token = "llop_" + secrets.token_urlsafe(32)
        expires = now + self._lifetime
        await self._store.add_token(TokenRow(_digest(token), operator.name, now, expires))
        return IssuedToken(token, operator, expires)

    async def check_token(self, token: str) -> Operator:
        """The operator a live token belongs to. Raises AuthenticationFailed."""
        row = await self._store.get_token(_digest(token))
        if row is None or row.expires <= self._clock():
            raise AuthenticationFailed("authentication failed")
        found = await self._store.get(row.name)
        if found is None:
            raise AuthenticationFailed("authentication failed")
        return Operator(found.name, found.role, found.created)

    async def revoke_token(self, token: str) -> None:
        try:
            await self._store.delete_token(_digest(token))
        except NotFound:
            raise AuthenticationFailed("authentication failed") from None
