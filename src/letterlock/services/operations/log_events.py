"""The closed vocabulary of operational log events, and the one-line call that logs one.

Every event an operator would look for (a session, a login, a message accepted,
stored and sent, a rejection, a refusal, a legal or admin action, the server starting
and stopping) is one structured line (:mod:`letterlock.services.operations.logs`
writes it as logfmt or JSON) and moves the Prometheus counters
(:mod:`letterlock.services.operations.metrics`). Call sites are one line::

    log_events.event(LogEvent.LOGIN_FAILED, ip=peer_ip, user=address)

Rules, for every call site:

- never a message body, a subject or any other header, and never a password or a
  key; a reason is a status code or a short fixed text, not what the peer said;
- mail addresses only in the fields named in :data:`ADDRESS_FIELDS`, which are
  written in full or as keyed hashes (``log.addresses``);
- facts about the current connection or message (session id, protocol, queue id)
  are bound once with :func:`bind` and then added to every event of that task.

Legal and admin actions are the audit log's events (:class:`EventType`), logged
under their own names as they are recorded (see ``logs.LoggedAuditLog``).
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import secrets
from contextvars import ContextVar

Value = str | int | float | bool | None
Fields = tuple[tuple[str, Value], ...]

EVENTS_LOGGER = "letterlock.events"
"""The logger every event goes through (the log handler and the metrics handler
listen on it)."""


class LogEvent(enum.StrEnum):
    """``source:subject:action``, like the audit log's vocabulary."""

    SERVER_STARTED = "server:process:started"
    SERVER_STOPPED = "server:process:stopped"
    WORKER_EXITED = "server:worker:exited"
    """A front-end worker process ended unexpectedly (it is started again)."""
    SMTP_CONNECTED = "smtp:session:connected"
    SMTP_DISCONNECTED = "smtp:session:disconnected"
    SMTP_REJECTED = "smtp:reply:rejected"
    """A 4xx or 5xx reply (``code``, ``status``, ``command``)."""
    IMAP_CONNECTED = "imap:session:connected"
    IMAP_DISCONNECTED = "imap:session:disconnected"
    IMAP_NOTIFY_OVERFLOW = "imap:notify:overflow"
    """A NOTIFY client stopped reading (``unread`` bytes): NOTIFY was switched off."""
    LOGIN_OK = "auth:login:ok"
    LOGIN_FAILED = "auth:login:failed"
    """A wrong password or an unknown account (``ip`` first: contrib/fail2ban)."""
    LOGIN_DELAYED = "auth:login:delayed"
    """A password check held back ``delay_ms`` because this client (``ip``) or this
    account (``user``) has been failing (services/accounts/login_backoff.py)."""
    CLIENT_REFUSED = "limit:client:refused"
    """A client held to a limit (``limit``: connections, commands, errors,
    auth-failures, password-checks)."""
    ADDRESS_RESOLVED = "mail:address:resolved"
    """A recipient that is no account's own address was taken for accounts
    (``rcpt``, ``via``: alias, group, catch-all, subaddress or domain-alias, ``targets``:
    how many accounts, ``regions`` they live in; ``account`` when there is one)."""
    ADDRESS_DANGLING = "mail:address:dangling"
    """An alias, group or catch-all leads to an account that no longer exists
    (``rcpt``, ``account``); that target is skipped."""
    SENDER_REFUSED = "mail:sender:refused"
    """Submission refused an address the authenticated ``user`` does not own
    (``sender``, ``where``: mail-from, from or sender header field)."""
    MESSAGE_ACCEPTED = "mail:message:accepted"
    """A message taken responsibility for (SMTP 250), with its ``queue`` id."""
    MESSAGE_STORED = "mail:message:stored"
    """One recipient's sealed copy is durable (one line per recipient)."""
    MESSAGE_NOT_STORED = "mail:message:not-stored"
    MESSAGE_DAMAGED = "mail:message:damaged"
    TEXT_INDEX_DAMAGED = "mail:text-index:damaged"
    """A stored message is listed but its sealed copy is missing or does not open
    (``mailbox`` id, ``uid``, ``blob``): the client got NO [CORRUPTION]."""
    REGION_UNAVAILABLE = "storage:region:unavailable"
    """A region's storage could not be opened at start (``region``, ``reason``): its
    accounts get temporary failures, the other regions are served."""
    QUOTA_WARNED = "mail:quota:warned"
    """An account reached ``level`` per cent of a quota limit; its owner was sent a
    warning mail (once per level)."""
    DMARC_EVALUATED = "mail:dmarc:evaluated"
    """A message from a domain that publishes DMARC was checked (``domain`` of From:,
    ``result``, ``policy``, ``disposition``: none, quarantine or reject; ``arc``)."""
    SPAM_CHECKED = "spam:message:checked"
    """rspamd's verdict on a message (``action``, ``score``) and what was done
    (``taken``: deliver, junk, defer, reject)."""
    SPAM_FILTER_DOWN = "spam:filter:unavailable"
    """rspamd is enabled but does not answer (at start, or from the first failed
    message on); mail is delivered unchecked until it answers again."""
    SPAM_FILTER_UP = "spam:filter:available"
    """rspamd answers again after it was unavailable."""
    SPAM_LEARNED = "spam:message:learned"
    """Messages the owner moved into or out of Junk were shown to rspamd (``learn``:
    spam or ham; ``messages``, ``learned``, ``declined``: counts; ``reason`` of the
    last refusal or failure)."""
    OUTBOUND_QUEUED = "queue:message:queued"
    """A message for other domains is in the outbound queue (``outbound`` id)."""
    OUTBOUND_SENT = "queue:delivery:sent"
    OUTBOUND_DEFERRED = "queue:delivery:deferred"
    """An attempt failed for now; ``next`` says when the next one is."""
    OUTBOUND_FAILED = "queue:delivery:failed"
    """Failed for good (a 5xx, or too long in the queue): a bounce follows."""
    OUTBOUND_BOUNCED = "queue:bounce:delivered"
    """The delivery status notification reached the sender's mailbox."""
    OUTBOUND_DELAY_NOTICE = "queue:delay-notice:delivered"
    """The delayed-delivery notice (``smtp.delay_notice_s``) reached the sender's
    mailbox (``waited`` seconds, ``rcpts`` still being retried)."""
    OUTBOUND_NOTICE_SKIPPED = "queue:notice:skipped"
    """No bounce or delay notice for this message (``reason``: null-sender, or
    delivery-report: no report about a report)."""
    OUTBOUND_CHANGED = "queue:message:changed"
    """The operator held, released or rescheduled it (`letterlock queue`)."""
    OUTBOUND_DELETED = "queue:message:deleted"
    """The operator deleted it (`letterlock queue delete`)."""
    MAIL_IMPORTED = "mail:import:finished"
    """`letterlock mail import` stored mail (``account``, ``format``, ``folders``,
    ``messages``)."""
    MAIL_EXPORTED = "mail:export:finished"
    """`letterlock mail export` wrote plaintext mail (``account``, ``format``,
    ``folders``, ``messages``)."""
    MIGRATION_STARTED = "migration:account:started"
    """`letterlock mail migrate` began (``source``, ``target``: host:port, ``user``)."""
    MIGRATION_FOLDER = "migration:folder:copied"
    """One folder done (``copied``, ``skipped``: already copied by an earlier run)."""
    MIGRATION_FINISHED = "migration:account:finished"
    """Every folder done (``folders``, ``copied``, ``skipped``, ``seconds``)."""
    MIGRATION_FAILED = "migration:account:failed"
    """Stopped by an error (``reason``); a later run resumes where it stopped."""
    LEGAL_IMPACT_RUN = "legal:impact:run"
    """`letterlock legal impact` decided every stored matter again under other
    policies (``actor``, ``profile``, ``matters``, and how many would ``change``,
    ``disclose_more``, ``refuse_more`` or could not be decided: ``errors``); nothing
    was changed."""
    LEGAL_ORIGINAL_DAMAGED = "legal:original:damaged"
    """An original filed with a legal matter is missing, does not open, or is not the
    one whose SHA-256 was recorded (``matter``, ``attachment``, ``reason``)."""
    LEGAL_PACKAGE_DOWNLOADED = "legal:package:downloaded"
    """An operator downloaded a matter's production package from the legal console
    (``actor``, ``matter``, ``package``: the zip's name)."""
    TLS_POLICY_FETCHED = "tls:policy:fetched"
    """A recipient domain's MTA-STS policy was fetched (``domain``, ``mode``,
    ``max_age``) and is kept for max_age seconds."""
    TLS_POLICY_FAILURE = "tls:policy:failure"
    """Outbound TLS fell short of a recipient domain's policy, or its policy could
    not be had: ``domain``, ``policy`` (sts), ``result`` (the RFC 8460 TLS-RPT result
    type), ``mx``, ``reason``. In mode enforce the delivery is deferred."""
    TLS_REPORT_SENT = "tls:report:sent"
    """The daily TLS report (RFC 8460) for a recipient domain went out: ``domain``,
    ``day``, ``report_id``, ``via`` (mailto, https or both), ``destinations``,
    ``successes``, ``failures`` (session counts)."""
    TLS_REPORT_RECEIVED = "tls:report:received"
    """A TLS report about our domains was stored: ``via`` (smtp, https), ``report``
    (its number in `letterlock tls-reports list`), ``organization``, ``report_id``,
    ``domains``, ``successes``, ``failures``."""
    TLS_REPORT_REFUSED = "tls:report:refused"
    """What came as a TLS report could not be read (``via``, ``reason``); the sender
    was refused (SMTP 550, HTTP 400), nothing was stored."""
    SEALED = "crypto:message:sealed"
    """Debug: a message sealed (``seconds``)."""
    UNSEALED = "crypto:message:unsealed"
    """Debug: a message opened (``seconds``)."""
    BACKUP_STARTED = "backup:region:started"
    """`letterlock backup` began (``region``, ``backup`` id, ``dir``)."""
    BACKUP_FINISHED = "backup:region:finished"
    """The backup is complete (``messages``, ``blobs``, ``bytes``, ``rounds``: how
    many snapshots it took, ``seconds``)."""
    BACKUP_FAILED = "backup:region:failed"
    BACKUP_VERIFIED = "backup:region:verified"
    """An operator checked a backup's manifest and every file's SHA-256 from the
    console (``operator``, ``backup``, ``ok``, ``reason`` when not)."""
    RESTORE_STARTED = "backup:restore:started"
    RESTORE_FINISHED = "backup:restore:finished"
    RESTORE_REFUSED = "backup:restore:refused"
    """A restore refused (``reason``: another region, a damaged backup, a target
    that is not empty, a running server); nothing was changed."""
    FILTER_ACTION = "mail:filter:action"
    """An account's active filter (Sieve) acted on a delivered message: ``account``,
    ``action`` (keep, fileinto, redirect, reject, discard, vacation), ``mailbox`` for
    fileinto; never a subject or body."""
    FILTER_FAILED = "mail:filter:failed"
    """A filter could not run (``account``, ``reason``): the message was kept in
    INBOX (implicit keep)."""
    FILTER_CHANGED = "mail:filter:changed"
    """A filter script was stored, renamed, deleted or (de)activated, or the junk
    choice changed (``account``; ``change``: stored, renamed, deleted, activated,
    deactivated, junk-folder or junk-inbox; ``via``: managesieve or web)."""
    MANAGESIEVE_CONNECTED = "managesieve:session:connected"
    MANAGESIEVE_DISCONNECTED = "managesieve:session:disconnected"
    LOG_WITNESS_COSIGNED = "audit:witness:cosigned"
    """A witness cosigned the audit log's checkpoint (``witness`` key name, ``size``)."""
    LOG_VERIFIED = "audit:log:verified"
    """An operator recomputed the whole audit log from the console, as `letterlock
    log verify` does (``operator``, ``events``, ``intact``, ``findings``)."""
    LOG_WITNESS_REFUSED = "audit:witness:refused"
    """A witness refused the checkpoint or could not be reached (``witness``, ``size``,
    ``reason``): a refusal with a consistency error means it saw another tree."""


LEVELS: dict[LogEvent, int] = {
    LogEvent.SERVER_STARTED: logging.INFO,
    LogEvent.SERVER_STOPPED: logging.INFO,
    LogEvent.WORKER_EXITED: logging.WARNING,
    LogEvent.SMTP_CONNECTED: logging.INFO,
    LogEvent.SMTP_DISCONNECTED: logging.INFO,
    LogEvent.SMTP_REJECTED: logging.INFO,
    LogEvent.IMAP_CONNECTED: logging.INFO,
    LogEvent.IMAP_DISCONNECTED: logging.INFO,
    LogEvent.IMAP_NOTIFY_OVERFLOW: logging.WARNING,
    LogEvent.LOGIN_OK: logging.INFO,
    LogEvent.LOGIN_FAILED: logging.WARNING,
    LogEvent.LOGIN_DELAYED: logging.WARNING,
    LogEvent.CLIENT_REFUSED: logging.WARNING,
    LogEvent.ADDRESS_RESOLVED: logging.INFO,
    LogEvent.ADDRESS_DANGLING: logging.WARNING,
    LogEvent.SENDER_REFUSED: logging.WARNING,
    LogEvent.MESSAGE_ACCEPTED: logging.INFO,
    LogEvent.MESSAGE_STORED: logging.INFO,
    LogEvent.MESSAGE_NOT_STORED: logging.WARNING,
    LogEvent.MESSAGE_DAMAGED: logging.ERROR,
    LogEvent.TEXT_INDEX_DAMAGED: logging.WARNING,
    LogEvent.REGION_UNAVAILABLE: logging.ERROR,
    LogEvent.QUOTA_WARNED: logging.INFO,
    LogEvent.DMARC_EVALUATED: logging.INFO,
    LogEvent.SPAM_CHECKED: logging.INFO,
    LogEvent.SPAM_FILTER_DOWN: logging.WARNING,
    LogEvent.SPAM_FILTER_UP: logging.INFO,
    LogEvent.SPAM_LEARNED: logging.INFO,
    LogEvent.OUTBOUND_QUEUED: logging.INFO,
    LogEvent.OUTBOUND_SENT: logging.INFO,
    LogEvent.OUTBOUND_DEFERRED: logging.WARNING,
    LogEvent.OUTBOUND_FAILED: logging.WARNING,
    LogEvent.OUTBOUND_BOUNCED: logging.INFO,
    LogEvent.OUTBOUND_DELAY_NOTICE: logging.INFO,
    LogEvent.OUTBOUND_NOTICE_SKIPPED: logging.INFO,
    LogEvent.OUTBOUND_CHANGED: logging.INFO,
    LogEvent.OUTBOUND_DELETED: logging.WARNING,
    LogEvent.MAIL_IMPORTED: logging.INFO,
    LogEvent.MAIL_EXPORTED: logging.WARNING,
    LogEvent.MIGRATION_STARTED: logging.INFO,
    LogEvent.MIGRATION_FOLDER: logging.INFO,
    LogEvent.MIGRATION_FINISHED: logging.INFO,
    LogEvent.MIGRATION_FAILED: logging.ERROR,
    LogEvent.LEGAL_IMPACT_RUN: logging.INFO,
    LogEvent.LOG_WITNESS_COSIGNED: logging.INFO,
    LogEvent.LOG_WITNESS_REFUSED: logging.WARNING,
    LogEvent.LEGAL_ORIGINAL_DAMAGED: logging.ERROR,
    LogEvent.LEGAL_PACKAGE_DOWNLOADED: logging.WARNING,
    LogEvent.TLS_POLICY_FETCHED: logging.INFO,
    LogEvent.TLS_POLICY_FAILURE: logging.WARNING,
    LogEvent.TLS_REPORT_SENT: logging.INFO,
    LogEvent.TLS_REPORT_RECEIVED: logging.INFO,
    LogEvent.TLS_REPORT_REFUSED: logging.WARNING,
    LogEvent.SEALED: logging.DEBUG,
    LogEvent.UNSEALED: logging.DEBUG,
    LogEvent.BACKUP_STARTED: logging.INFO,
    LogEvent.BACKUP_FINISHED: logging.INFO,
    LogEvent.BACKUP_FAILED: logging.ERROR,
    LogEvent.BACKUP_VERIFIED: logging.INFO,
    LogEvent.LOG_VERIFIED: logging.INFO,
    LogEvent.RESTORE_STARTED: logging.WARNING,
    LogEvent.RESTORE_FINISHED: logging.WARNING,
    LogEvent.RESTORE_REFUSED: logging.WARNING,
    LogEvent.FILTER_ACTION: logging.INFO,
    LogEvent.FILTER_FAILED: logging.WARNING,
    LogEvent.FILTER_CHANGED: logging.INFO,
    LogEvent.MANAGESIEVE_CONNECTED: logging.INFO,
    LogEvent.MANAGESIEVE_DISCONNECTED: logging.INFO,
}

ADDRESS_FIELDS = frozenset({"user", "sender", "rcpt", "account"})
"""Fields that hold a mail address: written per ``log.addresses`` (full or hashed)."""
TEXT_FIELDS = frozenset({"reason"})
"""Fields of free text (an error's message): addresses in them are hashed too."""

_events = logging.getLogger(EVENTS_LOGGER)
# Unless a server process configured logging (logs.configure), events go nowhere: a
# command-line tool does not print them, as Python's last-resort handler would.
_events.addHandler(logging.NullHandler())
_context: ContextVar[Fields] = ContextVar("letterlock_log_context", default=())


def event(name: LogEvent, /, **fields: Value) -> None:
    """Log one event (and count it); ``None`` fields are left out."""
    level = LEVELS[name]
    if _events.isEnabledFor(level):
        # A record made here, not by Logger.log: no search of the caller's frame
        # (the event names itself), a few microseconds less on every message.
        record = logging.LogRecord(EVENTS_LOGGER, level, __file__, 0, name.value, None, None)
        record.ll_event = name
        record.ll_fields = fields
        record.ll_context = _context.get()
        _events.handle(record)


def enabled(name: LogEvent) -> bool:
    """Whether ``name`` would be logged or counted (to skip measuring otherwise)."""
    return _events.isEnabledFor(LEVELS[name])


def bind(**fields: Value) -> None:
    """Add ``fields`` to every event logged from now on by the current task and the
    tasks it starts (a connection's session id, a message's queue id)."""
    old = _context.get()
    kept = tuple(item for item in old if item[0] not in fields)
    _context.set(kept + tuple((k, v) for k, v in fields.items() if v is not None))


def context() -> Fields:
    """The fields bound in the current task."""
    return _context.get()


class _Ids:
    """Session ids unique across the processes of a server without a system call
    each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._prefix = secrets.token_hex(3)
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        if os.getpid() != self._pid:  # forked: a prefix of our own
            self.__init__()  # type: ignore[misc]
        return f"{self._prefix}{next(self._counter):x}"


new_session_id = _Ids()
"""A fresh session id (``s=`` in SMTP and IMAP lines)."""
