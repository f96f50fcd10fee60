"""Teaching rspamd from what users do: a message the owner moves or copies into Junk
(or appends there) is learned as spam, one moved out of Junk into any mailbox but
Trash as ham, as Dovecot's IMAPSieve rules for rspamd do.

Only the owner's session can read a stored message, so learning happens there: the
mailbox service calls :meth:`SpamLearner.__call__` after the change is durable, which
decides from mailbox names alone and starts a task; the IMAP reply never waits for
rspamd. rspamd then sees the message's content (docs/operating.md says so, and the
privacy center's data page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from letterlock.config import SpamConfig
from letterlock.errors import LetterlockError
from letterlock.services.mail.filing import Filing, is_junk, is_trash
from letterlock.services.mail.mailbox import MailboxService
from letterlock.services.mail.rspamd import RspamdClient, RspamdUnavailable, SpamFilter
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger("letterlock.spam")

MAX_PER_FILING = 200
"""Messages of one move that are learned (a whole folder dragged into Junk teaches
little more than its first few hundred)."""
MAX_PENDING = 64
"""Moves waiting to be learned; beyond that a move is not learned (and logged)."""
BATCH = 20
"""Messages opened at once while learning."""


def learn_as(filing: Filing) -> str | None:
    """``spam``, ``ham`` or None (nothing to learn) for a filing."""
    into_junk, from_junk = is_junk(filing.target), is_junk(filing.source)
    if into_junk and not from_junk:
        return "spam"
    if from_junk and not into_junk and not is_trash(filing.target):
        return "ham"
    return None


class SpamLearner:
    def __init__(self, mailboxes: MailboxService, client: RspamdClient,
                 concurrent: int = 2) -> None:
        self._mailboxes = mailboxes
        self._client = client
        self._slots = asyncio.Semaphore(concurrent)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: SpamConfig, mailboxes: MailboxService,
                    ) -> SpamLearner | None:
        """The learner ``spam.*`` asks for: None when rspamd is off or has no
        controller URL."""
        spam = SpamFilter.from_config(config)
        if spam is None or not spam.client.can_learn:
            return None
        return cls(mailboxes, spam.client)

    def __call__(self, filing: Filing) -> None:
        kind = learn_as(filing)
        if kind is None or not filing.uids:
            return
        if len(self._tasks) >= MAX_PENDING:
            event(LogEvent.SPAM_LEARNED, account=filing.ref.address, learn=kind,
                  messages=len(filing.uids), learned=0, reason="too many pending")
            return
        task = asyncio.get_running_loop().create_task(self._learn(filing, kind == "spam"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn(self, filing: Filing, spam: bool) -> None:
        learned = declined = 0
        reason = ""
        async with self._slots:
            try:
                async for body in self._bodies(filing):
                    status, why = await self._client.learn(body, spam=spam)
                    if status == 200:
                        learned += 1
                    else:
                        declined += 1
                        reason = f"{status} {why}"
            except RspamdUnavailable as exc:
                reason = str(exc)
            except LetterlockError as exc:  # the messages went away meanwhile
                reason = f"{type(exc).__name__}"
            except Exception:  # a learner's bug must not reach the event loop's log only
                log.exception("learning failed")
                reason = "internal error"
        event(LogEvent.SPAM_LEARNED, account=filing.ref.address,
              learn="spam" if spam else "ham", messages=len(filing.uids),
              learned=learned, declined=declined or None, reason=reason[:120] or None)

    async def _bodies(self, filing: Filing) -> AsyncIterator[bytes]:
        if filing.raw:
            for raw in filing.raw[:MAX_PER_FILING]:
                yield raw
            return
        session = filing.session
        assert session is not None
        uids = list(filing.uids[:MAX_PER_FILING])
        for i in range(0, len(uids), BATCH):
            msgs = await self._mailboxes.get_messages(session, filing.target.id,
                                                      uids[i:i + BATCH], with_summary=False)
            bodies = await self._mailboxes.bodies(session, msgs)
            for m in msgs:
                yield bodies[m.uid]

    async def close(self) -> None:
        """Wait briefly for learning under way, then stop it."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
