"""Server-side sessions of the web privacy center.

A login unlocks the account key (a :class:`~letterlock.services.accounts.accounts.Session`);
the browser gets only a random cookie that names it here, in this process's memory.
Nothing about a session is written anywhere: a restart logs everyone out, and the
unlocked key lives exactly as long as the entry below. An entry ends after
``idle_s`` seconds without a request, after ``max_age_s`` in all, or at logout.

Every state-changing form carries the session's CSRF token; the login form, which
comes before any session, uses a double-submit token (cookie + hidden field).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from letterlock.services.accounts.accounts import Session

COOKIE = "letterlock_session"
LOGIN_COOKIE = "letterlock_login"
DEFAULT_IDLE_S = 15 * 60.0
DEFAULT_MAX_AGE_S = 12 * 3600.0
DEFAULT_MAX_SESSIONS = 10_000


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


@dataclass
class WebSession:
    """One logged-in browser. ``csrf`` goes into every form the session is shown."""

    id: str
    account: Session
    csrf: str
    created: float
    last_seen: float

    @property
    def address(self) -> str:
        return self.account.address


class _Entry(Protocol):
    id: str
    created: float
    last_seen: float


E = TypeVar("E", bound=_Entry)


class LiveEntries(Generic[E]):
    """Entries of this process's memory by cookie value, each ending after ``idle_s``
    without use or ``max_age_s`` in all; the least recently used goes first when
    ``max_sessions`` are live. The privacy center's and the operator console's
    sessions are both kept so."""

    def __init__(self, *, idle_s: float = DEFAULT_IDLE_S, max_age_s: float = DEFAULT_MAX_AGE_S,
                 max_sessions: int = DEFAULT_MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self._max = max_sessions
        self._clock = clock
        self._live: dict[str, E] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._live)

    def _alive(self, entry: E, now: float) -> bool:
        return now - entry.last_seen < self.idle_s and now - entry.created < self.max_age_s

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._live.items() if not self._alive(e, now)]:
            del self._live[key]

    def _keep(self, entry: E) -> E:
        with self._lock:
            self._expire(entry.created)
            if len(self._live) >= self._max:
                # Full of live sessions: the least recently used one goes first.
                oldest = min(self._live.values(), key=lambda e: e.last_seen)
                del self._live[oldest.id]
            self._live[entry.id] = entry
        return entry

    def get(self, session_id: str | None) -> E | None:
        """The live entry named by the cookie, touched; None if unknown or expired."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            entry = self._live.get(session_id)
            if entry is None:
                return None
            if not self._alive(entry, now):
                del self._live[session_id]
                return None
            entry.last_seen = now
            return entry

    def close(self, session_id: str | None) -> None:
        """Logout: forget the entry (and what it holds)."""
        if session_id:
            with self._lock:
                self._live.pop(session_id, None)

    def clear(self) -> None:
        with self._lock:
            self._live.clear()


class SessionStore(LiveEntries[WebSession]):
    """The live web sessions of this process, by cookie value."""

    def open(self, account: Session) -> WebSession:
        """Start a session for an authenticated owner."""
        now = self._clock()
        return self._keep(WebSession(new_token(), account, new_token(), now, now))

    def close_others(self, address: str, keep: str) -> int:
        """End every other session of ``address`` (after a password change)."""
        with self._lock:
            gone = [k for k, e in self._live.items() if e.address == address and k != keep]
            for key in gone:
                del self._live[key]
        return len(gone)
