"""What happens to a message from the internet before it is stored: the sender checks
(SPF, DKIM, ARC, DMARC; services/mail/inbound_auth.py) and, when enabled, rspamd
(services/mail/rspamd.py), turned into one decision with the header fields that
record why.

    DMARC p=reject (not overridden by a trusted ARC chain)   -> REJECT
    rspamd reject                                            -> REJECT
    rspamd soft reject (its greylisting)                     -> DEFER
    rspamd add header / rewrite subject, DMARC p=quarantine  -> JUNK
    anything else, or rspamd not answering                   -> DELIVER (INBOX)

The SMTP front-end turns REJECT and DEFER into replies; this module knows no codes.
rspamd sees the message as it will be stored (trace and Authentication-Results
fields included), so its own rules can use our results.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail.inbound_auth import InboundChecks
from letterlock.services.mail.rspamd import (
    DEFER_ACTIONS,
    JUNK_ACTIONS,
    REJECT_ACTIONS,
    SpamFilter,
)
from letterlock.services.operations.log_events import LogEvent, event


class Decision(enum.Enum):
    DELIVER = "deliver"
    JUNK = "junk"
    DEFER = "defer"
    REJECT = "reject"


class Because(enum.Enum):
    NOTHING = "nothing"
    DMARC = "dmarc"
    SPAM = "spam"


@dataclass(frozen=True)
class Screened:
    decision: Decision
    because: Because
    prefix: bytes
    """Header fields to put before ``message`` (Authentication-Results,
    X-Spam-Status)."""
    message: bytes
    """The message, forged fields in our name removed."""


def strip_fields(message: bytes, name: str) -> bytes:
    """``message`` without any header field called ``name`` (lower case)."""
    end = header_end(message)
    if name.encode() not in message[:end].lower():
        return message
    header = message[:end]
    for f in split_fields(header):
        if f.key == name:
            header = header.replace(f.raw, b"", 1)
    return header + message[end:]


class InboundScreen:
    def __init__(self, checks: InboundChecks | None, spam: SpamFilter | None,
                 hostname: str) -> None:
        self.checks = checks
        self.spam = spam
        self._hostname = hostname

    async def screen(self, message: bytes, *, ip: str, helo: str, sender: str,
                     recipients: Sequence[str], trace: bytes,
                     queue_id: str = "") -> Screened:
        """The decision on ``message`` from ``ip``; ``trace`` is the Received field
        it will be stored with (rspamd sees it)."""
        prefix = b""
        dmarc_says = "none"
        if self.checks is not None:
            auth = await self.checks.evaluate(message, ip, sender, helo)
            message = self.checks.strip_forged(message)
            prefix, dmarc_says = auth.header, auth.disposition
            if dmarc_says == "reject":
                return Screened(Decision.REJECT, Because.DMARC, prefix, message)
        decision, because = Decision.DELIVER, Because.NOTHING
        if dmarc_says == "quarantine":
            decision, because = Decision.JUNK, Because.DMARC
        if self.spam is not None:
            # A sender's own X-Spam-Status must not pass for ours.
            message = strip_fields(message, "x-spam-status")
            verdict = await self.spam.check(trace + prefix + message, ip=ip, helo=helo,
                                            sender=sender, recipients=recipients,
                                            queue_id=queue_id, hostname=self._hostname)
            if verdict is not None:
                prefix += verdict.header()
                spam_says = _SPAM_DECISIONS.get(verdict.action, Decision.DELIVER)
                if _RANK[spam_says] > _RANK[decision]:
                    decision, because = spam_says, Because.SPAM
                event(LogEvent.SPAM_CHECKED, action=verdict.action,
                      score=round(verdict.score, 2), taken=decision.value)
        return Screened(decision, because, prefix, message)


_SPAM_DECISIONS = {**dict.fromkeys(REJECT_ACTIONS, Decision.REJECT),
                   **dict.fromkeys(DEFER_ACTIONS, Decision.DEFER),
                   **dict.fromkeys(JUNK_ACTIONS, Decision.JUNK)}
_RANK = {Decision.DELIVER: 0, Decision.JUNK: 1, Decision.DEFER: 2, Decision.REJECT: 3}
