"""Per-connection state handed to command handlers: the session state, the logged-in
owner (with the account key unlocked for this connection only), the selected mailbox,
enabled extensions, and the buffered output."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from letterlock.config import ImapConfig
from letterlock.imap import encoding, utf7
from letterlock.imap.selected import RecentClaims, SelectedMailbox
from letterlock.imap.state import State
from letterlock.services.accounts.accounts import AccountService, Session
from letterlock.services.mail.mailbox import MailboxService

if TYPE_CHECKING:
    from letterlock.imap.commands.notify import Notifier

FLUSH_AT = 64 * 1024
BODY_BYTES = 8 * 1024 * 1024
"""Message bytes one command reads from storage per round trip (bounds the memory a
FETCH or SEARCH of large messages holds at once)."""


class Output:
    """Buffered responses; flushed at the end of each command and whenever the buffer
    grows past FLUSH_AT (with back-pressure from the transport)."""

    __slots__ = ("_buf", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self._buf += data

    def untagged(self, data: bytes) -> None:
        self._buf += b"* " + data + b"\r\n"

    async def flush(self) -> None:
        if self._buf:
            self.writer.write(bytes(self._buf))
            self._buf.clear()
        await self.writer.drain()

    def flush_nowait(self) -> None:
        """Hand the buffer to the transport without waiting for the client to read it
        (NOTIFY: what piles up there is measured, see commands/notify.py)."""
        if self._buf:
            self.writer.write(bytes(self._buf))
            self._buf.clear()

    async def maybe_flush(self) -> None:
        if len(self._buf) >= FLUSH_AT:
            await self.flush()


@dataclass(frozen=True)
class Services:
    accounts: AccountService
    mailboxes: MailboxService
    config: ImapConfig
    listing: asyncio.Semaphore
    """Bounds concurrent whole-mailbox listings (SELECT, STATUS UNSEEN, EXPUNGE)."""
    recent: RecentClaims
    """Which session each new message is \\Recent to (IMAP4rev1)."""


BASE_CAPABILITIES = (
    "IMAP4rev1", "IMAP4rev2", "LITERAL+", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
    "UNSELECT", "SPECIAL-USE", "CREATE-SPECIAL-USE", "CHILDREN", "LIST-EXTENDED",
    "LIST-STATUS", "ESEARCH", "SASL-IR", "ID", "CONDSTORE", "QRESYNC", "BINARY",
    "UTF8=ACCEPT", "STATUS=SIZE", "SORT", "SORT=DISPLAY", "SEARCHRES",
    "MULTIAPPEND", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
    "ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT", "CATENATE", "NOTIFY")


class Context:
    __slots__ = ("can_starttls", "enabled", "loopback", "notifier", "out", "read_line",
                 "selected", "services", "starttls_requested", "state", "tls", "user")

    def __init__(self, services: Services, out: Output, *, tls: bool, loopback: bool,
                 can_starttls: bool,
                 read_line: Callable[[], Awaitable[bytes | None]]) -> None:
        self.services = services
        self.out = out
        self.tls = tls
        self.loopback = loopback
        self.can_starttls = can_starttls
        self.read_line = read_line
        self.state = State.NOT_AUTHENTICATED
        self.user: Session | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.starttls_requested = False
        self.notifier: Notifier | None = None
        """The NOTIFY SET in force (RFC 5465), None without one."""

    # -- extensions ------------------------------------------------------------------
    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def plaintext_login_allowed(self) -> bool:
        # Passwords cross only TLS, or the loopback interface (local tools, tests).
        return self.tls or self.loopback

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command ran (RFC 7162 3.1): the first one while a
        mailbox is selected announces the mailbox's HIGHESTMODSEQ."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.out.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % self.selected.modseq)

    def capabilities(self) -> list[str]:
        caps = list(BASE_CAPABILITIES)
        caps.append(f"APPENDLIMIT={self.services.config.max_literal_bytes}")
        if self.services.mailboxes.quotas is not None:
            caps += ["QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"]  # RFC 9208
        if self.state is State.NOT_AUTHENTICATED:
            if self.can_starttls and not self.tls:
                caps.append("STARTTLS")
            if self.plaintext_login_allowed:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
        return caps

    # -- mailbox names ---------------------------------------------------------------
    def mailbox_name(self, raw: bytes) -> str:
        """A client's mailbox name as stored (UTF-8). Raises ValueError."""
        text = raw.decode("utf-8")
        if not self.utf8 and all(ord(c) < 0x80 for c in text):
            text = utf7.decode(text)
        if text.upper() == "INBOX":
            return "INBOX"
        return text

    def mailbox_wire(self, name: str) -> bytes:
        if self.utf8:
            return encoding.astring(name, utf8=True)
        return encoding.astring(utf7.encode(name))
