"""The MX listener's handler with a TLS report inbox (RFC 8460): mail to
``smtp.tls_report_inbox`` is not a mailbox's but a report about our servers, read
at arrival and stored for `letterlock tls-reports` (services/operations/
tls_reports.py); every other recipient is the wrapped handler's.

A report that cannot be read is refused (550 5.6.0, the reason in the reply and one
log line), so the reporting server keeps it or tells its sender: nothing is stored
that was not understood, and nothing is lost without a word. Mail for the inbox and
for other recipients at once: the others get it as usual.
"""

from __future__ import annotations

from dataclasses import replace

from letterlock.errors import LetterlockError
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.delivery import Recipient, RecipientKind
from letterlock.services.mail.tls_rpt import ReportError
from letterlock.services.operations.tls_reports import TlsReportIntake
from letterlock.smtp import replies
from letterlock.smtp.hooks import Envelope, PeerInfo, SmtpHandler
from letterlock.smtp.parse import MailParams
from letterlock.smtp.replies import Reply


class TlsReportTap:
    """An :class:`SmtpHandler` that takes the report inbox's mail before ``inner``."""

    def __init__(self, inner: SmtpHandler, intake: TlsReportIntake) -> None:
        self._inner = inner
        self._intake = intake

    async def authenticate(self, peer: PeerInfo, login: str, password: str) -> Session | None:
        return await self._inner.authenticate(peer, login, password)

    async def mail(self, peer: PeerInfo, sender: str, params: MailParams) -> Reply:
        return await self._inner.mail(peer, sender, params)

    async def rcpt(
        self, peer: PeerInfo, envelope: Envelope, address: str
    ) -> tuple[Reply, Recipient | None]:
        if self._intake.takes(address):
            # No account: the report is stored by the intake, not in a mailbox.
            return replies.RECIPIENT_OK, Recipient(address, RecipientKind.LOCAL)
        return await self._inner.rcpt(peer, envelope, address)

    async def data(self, peer: PeerInfo, envelope: Envelope, message: bytes) -> list[Reply]:
        taken = [
            a
            for a in envelope.recipients
            if a.recipient.account is None and self._intake.takes(a.address)
        ]
        if not taken:
            return await self._inner.data(peer, envelope, message)
        try:
            stored = await self._intake.receive(message, via="smtp")
            answer = Reply(250, "2.0.0", f"OK TLS report stored as {stored.id}")
        except ReportError as exc:
            answer = Reply(550, "5.6.0", f"not a TLS report this server can read: {exc}"[:300])
        except LetterlockError:  # storage: the reporter tries again later
            answer = replies.TRY_LATER
        rest = tuple(a for a in envelope.recipients if a not in taken)
        if not rest:
            return [answer]
        # The other recipients decide the reply: they must not lose the message
        # because a report in it could not be read (that was logged).
        return await self._inner.data(peer, replace(envelope, recipients=rest), message)
