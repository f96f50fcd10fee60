"""Sign-in, sessions and the role gate of the operator console (``/console``).

An operator signs in with their name and password (the operators service: the same
fairly queued Argon2id check as the API's tokens); the browser gets a random cookie
naming a session held in this process's memory, like the privacy center's
(``web_sessions``), which ends after ``idle_s`` without a request, ``max_age_s`` in
all, at logout, or with the server. Every form carries the session's CSRF token; the
sign-in form a double-submit token.

The layout's navigation lists only the areas the operator's role may open
(:data:`AREAS`); an admin page asked for by another role is answered 403 with a page
that says so. The legal console (issue 14) adds its areas for ``legal``, ``auditor``
and ``admin`` to the same table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from letterlock.http.web_sessions import LiveEntries, new_token
from letterlock.services.accounts.operators import Operator

COOKIE = "letterlock_console"
LOGIN_COOKIE = "letterlock_console_login"
DEFAULT_IDLE_S = 15 * 60.0
DEFAULT_MAX_AGE_S = 8 * 3600.0
MAX_SESSIONS = 1_000


@dataclass(frozen=True)
class Area:
    path: str
    label: str
    roles: frozenset[str]


ADMIN = frozenset({"admin"})
AREAS: list[Area] = [
    Area("/console", "Overview", frozenset({"admin", "legal", "auditor"})),
    Area("/console/accounts", "Accounts", ADMIN),
    Area("/console/addresses", "Addresses", ADMIN),
    Area("/console/domains", "Domains", ADMIN),
    Area("/console/regions", "Regions", ADMIN),
    Area("/console/queue", "Queue", ADMIN),
    Area("/console/certificates", "Certificates", ADMIN),
    Area("/console/operators", "Operators", ADMIN),
    Area("/console/backups", "Backups", ADMIN),
    Area("/console/audit", "Audit log", ADMIN),
    Area("/console/mail", "Mail export", ADMIN),
    Area("/console/legal", "Legal matters", frozenset({"admin", "legal", "auditor"})),
]
"""The console's areas in navigation order, each with the roles that may open it."""


def areas_for(role: str) -> list[Area]:
    return [a for a in AREAS if role in a.roles]


@dataclass
class ConsoleSession:
    """One signed-in operator's browser."""

    id: str
    operator: Operator
    csrf: str
    created: float
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)
    """Messages (kind, text) for the next page shown: the outcome of a POST."""

    @property
    def name(self) -> str:
        return self.operator.name

    @property
    def role(self) -> str:
        return self.operator.role

    def say(self, text: str, kind: str = "ok") -> None:
        self.flash.append((kind, text))

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


class ConsoleSessions(LiveEntries[ConsoleSession]):
    """The live console sessions of this process, by cookie value."""

    def __init__(self, *, idle_s: float = DEFAULT_IDLE_S,
                 max_age_s: float = DEFAULT_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(idle_s=idle_s, max_age_s=max_age_s, max_sessions=MAX_SESSIONS,
                         clock=clock)

    def open(self, operator: Operator) -> ConsoleSession:
        now = self._clock()
        return self._keep(ConsoleSession(new_token(), operator, new_token(), now, now))


class SignInRequired(Exception):
    def __init__(self, expired: bool) -> None:
        super().__init__("sign-in required")
        self.expired = expired


class RoleRefused(Exception):
    """The signed-in operator's role may not open this page."""

    def __init__(self, console: ConsoleSession, needed: str) -> None:
        super().__init__(f"needs role {needed}")
        self.console = console
        self.needed = needed


def current(sessions: ConsoleSessions, request: Request) -> ConsoleSession:
    """The signed-in operator, or SignInRequired."""
    cookie = request.cookies.get(COOKIE)
    console = sessions.get(cookie)
    if console is None:
        raise SignInRequired(expired=bool(cookie))
    return console


def admin_only(sessions: ConsoleSessions, request: Request) -> ConsoleSession:
    """The signed-in admin, or SignInRequired / RoleRefused."""
    console = current(sessions, request)
    if console.role != "admin":
        raise RoleRefused(console, "admin")
    return console
