"""IMAP commands as typed values (the parser that makes them is
:mod:`letterlock.imap.parsing.parser`).

Each command class derives from the base naming the session state it needs
(:class:`AnyCommand`, :class:`NonAuthCommand`, :class:`AuthCommand`,
:class:`SelectedCommand`); :mod:`letterlock.imap.state` checks that in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from letterlock.imap.parsing.fetch import FetchItem, FetchModifiers
from letterlock.imap.parsing.primitives import SeqSet
from letterlock.imap.parsing.search import SearchKey, SearchProgram


@dataclass(frozen=True)
class Command:
    tag: str

    @property
    def name(self) -> str:
        return type(self).__name__.upper()


class AnyCommand(Command):
    """Valid in every state."""


class NonAuthCommand(Command):
    """Valid only before authentication."""


class AuthCommand(Command):
    """Valid when authenticated or selected."""


class SelectedCommand(Command):
    """Valid only with a mailbox selected."""


# -- any state -----------------------------------------------------------------------

@dataclass(frozen=True)
class Capability(AnyCommand):
    pass


@dataclass(frozen=True)
class Noop(AnyCommand):
    pass


@dataclass(frozen=True)
class Logout(AnyCommand):
    pass


@dataclass(frozen=True)
class Id(AnyCommand):
    params: tuple[tuple[str, str | None], ...] | None


# -- not authenticated ---------------------------------------------------------------

@dataclass(frozen=True)
class StartTls(NonAuthCommand):
    pass


@dataclass(frozen=True)
class Login(NonAuthCommand):
    user: bytes
    password: bytes


@dataclass(frozen=True)
class Authenticate(NonAuthCommand):
    mechanism: str
    initial: bytes | None
    """SASL-IR initial response as sent (base64, or ``=`` for empty)."""


# -- authenticated -------------------------------------------------------------------

@dataclass(frozen=True)
class Enable(AuthCommand):
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None


@dataclass(frozen=True)
class Select(AuthCommand):
    mailbox: bytes
    readonly: bool = False
    condstore: bool = False
    qresync: QresyncParams | None = None

    @property
    def name(self) -> str:
        return "EXAMINE" if self.readonly else "SELECT"


@dataclass(frozen=True)
class Create(AuthCommand):
    mailbox: bytes
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delete(AuthCommand):
    mailbox: bytes


@dataclass(frozen=True)
class Rename(AuthCommand):
    old: bytes
    new: bytes


@dataclass(frozen=True)
class Subscribe(AuthCommand):
    mailbox: bytes
    subscribe: bool = True

    @property
    def name(self) -> str:
        return "SUBSCRIBE" if self.subscribe else "UNSUBSCRIBE"


@dataclass(frozen=True)
class List(AuthCommand):
    reference: bytes
    patterns: tuple[bytes, ...]
    selection: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    lsub: bool = False
    extended: bool = False

    @property
    def name(self) -> str:
        return "LSUB" if self.lsub else "LIST"


@dataclass(frozen=True)
class Namespace(AuthCommand):
    pass


@dataclass(frozen=True)
class Status(AuthCommand):
    mailbox: bytes
    items: tuple[str, ...]


@dataclass(frozen=True)
class CatPart:
    """One part of a CATENATE (RFC 4469): literal text, or an IMAP URL (RFC 5092) of a
    message or message part to copy."""

    text: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class AppendPart:
    """One message of an APPEND after the first (MULTIAPPEND, RFC 3502)."""

    flags: tuple[str, ...]
    date: datetime | None
    message: bytes
    binary: bool = False
    catenate: tuple[CatPart, ...] = ()
    """CATENATE: the message is these parts joined (``message`` is then empty)."""


@dataclass(frozen=True)
class Append(AuthCommand):
    mailbox: bytes
    flags: tuple[str, ...]
    date: datetime | None
    message: bytes
    binary: bool = False
    more: tuple[AppendPart, ...] = ()
    """MULTIAPPEND: the messages after the first, in order."""
    catenate: tuple[CatPart, ...] = ()
    """CATENATE parts of the first message (RFC 4469)."""

    @property
    def parts(self) -> tuple[AppendPart, ...]:
        """Every message of the command, in order."""
        return (AppendPart(self.flags, self.date, self.message, self.binary, self.catenate),
                *self.more)


@dataclass(frozen=True)
class Idle(AuthCommand):
    pass


# -- selected ------------------------------------------------------------------------

@dataclass(frozen=True)
class Check(SelectedCommand):
    pass


@dataclass(frozen=True)
class Close(SelectedCommand):
    pass


@dataclass(frozen=True)
class Unselect(SelectedCommand):
    pass


@dataclass(frozen=True)
class Expunge(SelectedCommand):
    uids: SeqSet | None = None

    @property
    def name(self) -> str:
        return "UID EXPUNGE" if self.uids is not None else "EXPUNGE"


@dataclass(frozen=True)
class Search(SelectedCommand):
    program: SearchProgram
    uid: bool = False

    @property
    def name(self) -> str:
        return "UID SEARCH" if self.uid else "SEARCH"


@dataclass(frozen=True)
class Sort(SelectedCommand):
    criteria: tuple[tuple[bool, str], ...]
    """(reverse, key) pairs, most significant first."""
    charset: str
    keys: SearchKey
    uid: bool = False
    returns: tuple[str, ...] | None = None
    """ESORT/CONTEXT=SORT RETURN options (RFC 5267); None: a plain SORT response."""
    partial: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return "UID SORT" if self.uid else "SORT"


@dataclass(frozen=True)
class CancelUpdate(SelectedCommand):
    """CANCELUPDATE (RFC 5267 4.3.5): stop the updates of the searches so tagged."""

    tags: tuple[str, ...]


@dataclass(frozen=True)
class Thread(SelectedCommand):
    """THREAD and UID THREAD (RFC 5256)."""

    algorithm: str
    """``ORDEREDSUBJECT`` or ``REFERENCES``."""
    charset: str
    keys: SearchKey
    uid: bool = False

    @property
    def name(self) -> str:
        return "UID THREAD" if self.uid else "THREAD"


@dataclass(frozen=True)
class Fetch(SelectedCommand):
    set: SeqSet
    items: tuple[FetchItem, ...]
    uid: bool = False
    modifiers: FetchModifiers = field(default_factory=FetchModifiers)

    @property
    def name(self) -> str:
        return "UID FETCH" if self.uid else "FETCH"


@dataclass(frozen=True)
class Store(SelectedCommand):
    set: SeqSet
    mode: str
    """``set``, ``add`` or ``remove``."""
    silent: bool
    flags: tuple[str, ...]
    uid: bool = False
    unchanged_since: int | None = None

    @property
    def name(self) -> str:
        return "UID STORE" if self.uid else "STORE"


@dataclass(frozen=True)
class Copy(SelectedCommand):
    set: SeqSet
    mailbox: bytes
    uid: bool = False
    move: bool = False

    @property
    def name(self) -> str:
        return ("UID " if self.uid else "") + ("MOVE" if self.move else "COPY")
