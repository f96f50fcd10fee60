"""Storage contracts. Every implementation (in-memory, SQLite + files, PostgreSQL +
S3) satisfies these, and one contract test suite (tests/storage/test_contracts.py)
runs against each.

Errors: implementations raise :mod:`letterlock.errors` types (``NotFound`` family,
``AlreadyExists``, ``StorageError``) and never leak driver exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from letterlock.storage.models import (
    AccountRecord,
    Appended,
    Changes,
    DigestPack,
    Domain,
    Expunged,
    FlagChange,
    MailboxIndex,
    MailboxRecord,
    MessageRecord,
    NewMessage,
    Region,
    TextPosting,
)


class ControlStore(Protocol):
    """Operator records under ``HOME/control``: regions, domains, the directory
    (address -> region, nothing else about an account) and settings."""

    async def add_region(self, region: Region) -> None:
        """Register a region. Raises AlreadyExists."""
        ...

    async def list_regions(self) -> list[Region]:
        """All regions, ordered by id."""
        ...

    async def add_domain(self, name: str) -> Domain:
        """Host a mail domain (lower-case). Raises AlreadyExists."""
        ...

    async def list_domains(self) -> list[Domain]:
        ...

    async def assign(self, address: str, region_id: str) -> None:
        """Record that ``address`` lives in ``region_id``. Raises AlreadyExists."""
        ...

    async def reassign(self, address: str, region_id: str) -> None:
        """Point an existing address at another region. Raises UnknownAccount."""
        ...

    async def unassign(self, address: str) -> None:
        """Forget an address. Raises UnknownAccount."""
        ...

    async def lookup(self, address: str) -> str | None:
        """The region id of ``address`` or None."""
        ...

    async def list_assignments(self) -> list[tuple[str, str]]:
        """(address, region id) pairs ordered by address."""
        ...

    async def get_setting(self, key: str) -> str | None:
        ...

    async def set_setting(self, key: str, value: str) -> None:
        ...

    async def close(self) -> None:
        ...


class BlobStore(Protocol):
    """Sealed blobs of one cell, addressed by opaque ids."""

    async def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store every blob; returns their new ids (in input order) only when all are
        on stable storage. Ids are chosen by the store and never reused."""
        ...

    async def get(self, blob_id: str) -> bytes:
        """The blob's bytes. Raises UnknownMessage if absent."""
        ...

    async def get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """Several blobs in one round trip. Raises UnknownMessage if any is absent."""
        ...

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        """Remove blobs; absent ids are ignored."""
        ...

    async def list_ids(self) -> list[str]:
        """Every stored id (for consistency checks)."""
        ...

    async def close(self) -> None:
        ...


class CellStore(Protocol):
    """Metadata of one region: accounts, mailboxes and messages.

    Mailbox semantics follow RFC 9051 (UIDVALIDITY, UIDNEXT: strictly ascending UIDs
    never reused within a UIDVALIDITY) and RFC 7162 (every change to a message or
    expunge bumps the mailbox's HIGHESTMODSEQ and stamps the message).
    Every mutating method is atomic and durable on return.
    """

    # -- accounts --------------------------------------------------------------
    async def create_account(self, account: AccountRecord) -> None:
        """Raises AlreadyExists if the address is taken in this cell."""
        ...

    async def get_account(self, address: str) -> AccountRecord | None:
        ...

    async def list_accounts(self) -> list[AccountRecord]:
        ...

    async def update_account_keys(self, address: str, wrapped_by_password: bytes,
                                  wrapped_by_recovery: bytes) -> None:
        """Replace the wrapped private key copies. Raises UnknownAccount."""
        ...

    async def set_custody(self, address: str, custody: str, openpgp_cert: bytes) -> None:
        """Set the account's key custody: ``e2e`` with the owner's OpenPGP
        certificate, or ``sealed`` with ``b""``. Raises UnknownAccount."""
        ...

    async def delete_account(self, address: str) -> list[str]:
        """Remove the account with its mailboxes and messages; returns the blob ids
        that are no longer referenced. Raises UnknownAccount."""
        ...

    # -- mailboxes -------------------------------------------------------------
    async def create_mailbox(self, account_id: str, name: str, special_use: str | None,
                             subscribed: bool) -> MailboxRecord:
        """Raises AlreadyExists. A new mailbox gets a UIDVALIDITY never used before
        for that name in this account. ``subscribed`` True also adds ``name`` to the
        subscription list; False leaves the list as it is (a name subscribed before
        the mailbox existed stays subscribed)."""
        ...

    async def list_mailboxes(self, account_id: str) -> list[MailboxRecord]:
        """Every mailbox of the account, ordered by name. ``subscribed`` of each
        record tells whether its name is on the subscription list."""
        ...

    async def get_mailbox(self, account_id: str, name: str) -> MailboxRecord:
        """Raises UnknownMailbox."""
        ...

    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord:
        """Raises UnknownMailbox."""
        ...

    async def rename_mailbox(self, account_id: str, old: str, new: str) -> None:
        """Rename ``old`` and every ``old/...`` child. Raises UnknownMailbox or
        AlreadyExists. Subscriptions: every renamed mailbox whose old name was
        subscribed has its new name subscribed too; the old names stay on the list
        (RFC 9051 6.3.9: the server never removes a name from it by itself)."""
        ...

    async def delete_mailbox(self, account_id: str, name: str) -> list[str]:
        """Delete the mailbox and its messages; returns unreferenced blob ids.
        The subscription list is not changed."""
        ...

    # -- subscriptions (RFC 9051 6.3.7, 6.3.8) -----------------------------------
    async def subscribe(self, account_id: str, name: str, on: bool) -> None:
        """Add ``name`` to (``on``) or remove it from the account's subscription list.
        The name need not be a mailbox; adding a present name or removing an absent
        one changes nothing."""
        ...

    async def list_subscriptions(self, account_id: str) -> list[str]:
        """The account's subscribed names, existing as mailboxes or not, sorted."""
        ...

    async def account_usage(self, account_id: str) -> tuple[int, int]:
        """(messages, total size in bytes of their blobs) over all the account's
        mailboxes: a blob shared by copies of a message counts once."""
        ...

    # -- messages --------------------------------------------------------------
    async def append_messages(self, messages: Sequence[NewMessage]) -> list[Appended]:
        """Append in one transaction (group commit); UIDs ascend in input order."""
        ...

    async def list_messages(self, mailbox_id: int, *,
                            with_summary: bool = True) -> list[MessageRecord]:
        """Every message of the mailbox, ascending UID.

        With ``with_summary`` False every record's ``summary`` is ``b""`` and the
        sealed summaries are not read at all: the light index (uid, flags, modseq,
        size, internaldate) that opening a mailbox or counting its flags needs."""
        ...

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        """Claim IMAP4rev1 \\Recent (RFC 3501 2.3.2) of the mailbox's messages with
        UIDs up to ``up_to``: atomically raise the mailbox's recent mark to ``up_to``
        (if lower) and return the mark it had. Messages with UIDs above the returned
        mark and up to ``up_to`` are recent to the caller alone. Need not be durable
        (a power cut may make a message recent twice). Raises UnknownMailbox."""
        ...

    async def recent_mark(self, mailbox_id: int) -> int:
        """The mailbox's recent mark (0 if nothing was claimed). Raises UnknownMailbox."""
        ...

    async def mailbox_index(self, mailbox_id: int) -> MailboxIndex:
        """UIDs and aggregates of the mailbox (for SELECT and STATUS), without
        building a record per message. Raises UnknownMailbox."""
        ...

    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *,
                           with_summary: bool = True) -> list[MessageRecord]:
        """The named messages that exist, ascending UID (``with_summary`` as for
        list_messages)."""
        ...

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: frozenset[str],
                          unchanged_since: int | None = None) -> tuple[list[FlagChange],
                                                                       list[int]]:
        """``mode`` is ``set``, ``add`` or ``remove``. Returns (changes actually made,
        UIDs refused because their modseq exceeds ``unchanged_since`` (RFC 7162 3.1.3)).
        Messages whose flags do not change are not stamped.

        Atomic, but durable only with the store's next durable write (or checkpoint):
        a crash of the process loses nothing, a power cut may undo the last flag
        changes (never mail), as Dovecot's ``mail_fsync = optimized`` does."""
        ...

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[Expunged]:
        """Remove the named messages (absent UIDs are ignored), ascending UID."""
        ...

    async def expunged_flags(self, mailbox_id: int,
                             uids: Sequence[int]) -> dict[int, FlagChange]:
        """For those of ``uids`` expunged from the mailbox: the flags each message had
        when it was expunged, with the expunge's modseq (uid -> FlagChange). Lets a
        session that has not yet been told of an expunge answer for the message as it
        last was (RFC 2180 4.1.1 "ghosts")."""
        ...

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> list[tuple[int, Appended]]:
        """Copy (sharing blobs); returns (source uid, appended) pairs."""
        ...

    async def changes_since(self, mailbox_id: int, modseq: int, *,
                            with_summary: bool = True) -> Changes:
        """Messages with modseq > ``modseq`` and UIDs expunged after it
        (``with_summary`` as for list_messages)."""
        ...

    # -- digest packs (sealed read caches, see services/mail/digests.py) ----------
    async def get_digest_packs(self, mailbox_id: int, first_uid: int,
                               last_uid: int) -> list[DigestPack]:
        """The mailbox's packs whose UID range meets ``first_uid..last_uid``,
        ascending ``first_uid``. Raises UnknownMailbox."""
        ...

    async def put_digest_pack(self, pack: DigestPack) -> bool:
        """Store ``pack``, replacing the mailbox's pack with the same ``first_uid``,
        only if it is whole and current: exactly ``pack.count`` messages of the mailbox
        have UIDs in its range now, and it covers no less than the one it replaces.
        Returns whether it was stored (False is not an error: the caller's view was
        stale). Every operation that removes a message (expunge, mailbox or account
        deletion) removes the packs whose range holds it, in the same transaction, so
        a stored pack never describes a message that is gone."""
        ...

    # -- text packs (sealed body text for SEARCH, see services/mail/text_index.py) --
    async def get_text_packs(self, mailbox_id: int, first_uid: int,
                             last_uid: int) -> list[DigestPack]:
        """As get_digest_packs, for the mailbox's text packs."""
        ...

    async def put_text_pack(self, pack: DigestPack) -> bool:
        """As put_digest_pack, for a text pack (same rules: whole, current, and
        removed with any message it holds)."""
        ...

    # -- text postings (sealed at delivery, see services/mail/text_postings.py) ----
    async def get_text_postings(self, mailbox_id: int, first_uid: int,
                                last_uid: int) -> list[TextPosting]:
        """The postings of the mailbox's messages with UIDs in ``first_uid..last_uid``
        (a message's posting is stored by append_messages with it, when its
        NewMessage has one), ascending UID. Every operation that removes a message
        (expunge, MOVE, mailbox or account deletion) removes its posting in the same
        transaction. Raises UnknownMailbox."""
        ...

    async def delete_text_postings(self, mailbox_id: int, uids: Sequence[int]) -> None:
        """Drop the postings of ``uids`` (merged into a text pack); absent ones are
        ignored."""
        ...

    async def close(self) -> None:
        ...
