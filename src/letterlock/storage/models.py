"""Records exchanged with storage. Plain values only: nothing here does I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Region:
    id: str
    """Short identifier, e.g. ``eu-dublin``."""
    country: str
    """ISO 3166-1 alpha-2 country code of the jurisdiction, e.g. ``IE``."""


@dataclass(frozen=True)
class Domain:
    name: str
    created: datetime


@dataclass(frozen=True)
class AccountRecord:
    """An account as its home cell stores it. Keys are public or wrapped, never clear."""

    id: str
    address: str
    created: datetime
    public_key: bytes
    key_id: bytes
    wrapped_by_password: bytes
    wrapped_by_recovery: bytes
    custody: str = "sealed"
    """``sealed`` (server-held key locked by the password) or ``e2e``."""
    openpgp_cert: bytes = b""
    """For ``e2e``: the owner's OpenPGP certificate (public, ASCII-armored) that
    delivered mail is encrypted to; empty otherwise."""


@dataclass(frozen=True)
class MailboxRecord:
    id: int
    account_id: str
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    subscribed: bool
    messages: int
    """Number of messages currently in the mailbox."""


@dataclass(frozen=True)
class MessageRecord:
    """A message's plain metadata plus pointers to its sealed content."""

    mailbox_id: int
    uid: int
    blob_id: str
    size: int
    """Size of the plaintext RFC 5322 message in octets (RFC822.SIZE)."""
    internaldate: datetime
    flags: frozenset[str]
    modseq: int
    summary: bytes
    """Sealed summary (headers, structure) of the message."""


@dataclass(frozen=True)
class NewMessage:
    """A message to append. Its sealed blob must already be durable in the blob store
    (``blob_id`` is filled in by the group committer once it is)."""

    mailbox_id: int
    blob_id: str
    size: int
    internaldate: datetime
    flags: frozenset[str]
    summary: bytes
    posting: bytes = b""
    """The message's sealed text posting (services/mail/text_postings.py), stored in
    the same transaction as the message; b"" for none."""
    posting_key: bytes = b""
    """The public half of the posting key ``posting`` is sealed under."""


@dataclass(frozen=True)
class TextPosting:
    """One message's sealed text posting: what SEARCH BODY/TEXT compare, sealed at
    delivery to the account's public key, until a session merges it into the text
    pack of its window (services/mail/text_postings.py). Opaque to storage; dropped
    with its message."""

    mailbox_id: int
    uid: int
    key: bytes
    """The public half of the posting key (32 bytes)."""
    data: bytes


@dataclass(frozen=True)
class MailboxIndex:
    """What opening a mailbox (SELECT) or STATUS needs, computed by the store without
    a record per message: the UIDs in order and a few aggregates."""

    runs: tuple[tuple[int, int], ...]
    """The UIDs, ascending, as runs of consecutive ones: (first, last) each."""
    keywords: frozenset[str]
    """Every keyword (flag not starting with a backslash) some message has."""
    highestmodseq: int
    """The highest modification sequence of the mailbox or any message in it."""
    unseen: int
    """Messages without \\Seen."""
    first_unseen: int | None
    """UID of the first message without \\Seen."""
    deleted: int
    """Messages with \\Deleted."""
    size: int
    """Sum of the messages' sizes (octets)."""

    @property
    def uids(self) -> tuple[int, ...]:
        return tuple(u for first, last in self.runs for u in range(first, last + 1))

    @property
    def last(self) -> int:
        """The highest UID (0 if empty)."""
        return self.runs[-1][1] if self.runs else 0

    def uids_above(self, mark: int) -> list[int]:
        """The UIDs above ``mark``, ascending."""
        out: list[int] = []
        for first, last in reversed(self.runs):
            if last <= mark:
                break
            out[:0] = range(max(first, mark + 1), last + 1)
        return out


def runs_of(uids: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Ascending distinct UIDs as runs of consecutive ones."""
    out: list[tuple[int, int]] = []
    for uid in uids:
        if out and uid == out[-1][1] + 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return tuple(out)


@dataclass(frozen=True)
class DigestPack:
    """Sealed digests (content keys, headers, structure) of the messages of one mailbox
    whose UIDs lie in ``first_uid..last_uid``: ``count`` of them, every message of the
    mailbox in that range. Written and read only by a session holding the account key
    (services/mail/digests.py); to storage it is an opaque blob."""

    mailbox_id: int
    first_uid: int
    last_uid: int
    count: int
    data: bytes


@dataclass(frozen=True)
class Appended:
    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True)
class FlagChange:
    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass(frozen=True)
class Expunged:
    uid: int
    modseq: int
    orphaned_blob: str | None
    """The message's blob id if no other message in the cell references it any more."""


@dataclass(frozen=True)
class Changes:
    """What changed in a mailbox after a given modification sequence (RFC 7162)."""

    highestmodseq: int
    changed: tuple[MessageRecord, ...]
    vanished: tuple[int, ...]
    """UIDs expunged after the given modseq."""


def apply_flag_mode(current: frozenset[str], mode: str, flags: frozenset[str]) -> frozenset[str]:
    """The flag set after a STORE of ``flags`` in ``mode`` (``set``, ``add``, ``remove``)."""
    if mode == "set":
        return flags
    if mode == "add":
        return current | flags
    if mode == "remove":
        return current - flags
    raise ValueError(f"unknown flag mode {mode!r}")
