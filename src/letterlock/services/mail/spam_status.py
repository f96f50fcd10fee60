"""What a user may know of the spam filter (the privacy center's Junk tab): whether the
operator switched rspamd on, whether it answers now, whether moving mail into and out
of Junk teaches it, and where mail it calls junk goes for this account.

The page asks rspamd's ``/ping`` with a short timeout, no more often than
``PING_TTL_S`` per process, and never logs the answer: the MX path's own
``spam:filter:unavailable`` line is the operator's signal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from letterlock.config import SpamConfig
from letterlock.services.mail.filing import is_junk
from letterlock.services.mail.rspamd import RspamdClient, RspamdUnavailable
from letterlock.storage.models import MailboxRecord

PING_TIMEOUT_S = 3.0
PING_TTL_S = 30.0


@dataclass(frozen=True)
class SpamStatus:
    enabled: bool
    """``spam.rspamd = on``."""
    reachable: bool | None
    """rspamd answered ``/ping`` (None: not asked, it is off)."""
    problem: str
    """Why it did not answer (refused, timed out), for the page."""
    learning: bool
    """A controller is configured: moves into and out of Junk are learned."""
    junk_mailbox: str | None
    """The account's Junk mailbox (marked \\Junk, or named Junk), None until made."""
    junk_count: int


class SpamStatusProbe:
    def __init__(self, config: SpamConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._last: tuple[float, bool, str] | None = None
        self.enabled = config.rspamd.strip().lower() == "on"

    async def reachable(self) -> tuple[bool, str]:
        now = self._clock()
        if self._last is not None and now - self._last[0] < PING_TTL_S:
            return self._last[1], self._last[2]
        client = RspamdClient(
            self._config.rspamd_url, "", "", min(PING_TIMEOUT_S, float(self._config.timeout_s))
        )
        try:
            await client.ping()
            answer = (True, "")
        except RspamdUnavailable as exc:
            answer = (False, str(exc)[:120])
        self._last = (now, *answer)
        return answer

    async def status(self, junk: MailboxRecord | None) -> SpamStatus:
        """The status for an account whose Junk mailbox is ``junk`` (see
        :func:`junk_of`)."""
        reachable, problem = (await self.reachable()) if self.enabled else (None, "")
        learning = self.enabled and bool(self._config.rspamd_controller_url.strip())
        return SpamStatus(
            self.enabled,
            reachable,
            problem,
            learning,
            None if junk is None else junk.name,
            0 if junk is None else junk.messages,
        )


def junk_of(boxes: list[MailboxRecord]) -> MailboxRecord | None:
    """The mailbox delivery sets junk aside in (as MailboxService.junk_mailbox finds
    it, without making one)."""
    return next((b for b in boxes if b.special_use == "\\Junk"), None) or next(
        (b for b in boxes if is_junk(b)), None
    )
