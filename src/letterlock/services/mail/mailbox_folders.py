"""The mailboxes of an account (RFC 9051 6.3): listing, creating (with missing
parents), renaming (INBOX's messages moved), deleting, subscriptions, and the
mailboxes ``mail import`` and delivery make without a session. A base of
:class:`~letterlock.services.mail.mailbox.MailboxService`, which has the messages."""

from __future__ import annotations

from collections.abc import Sequence

from letterlock.errors import AlreadyExists, InvalidInput, MailboxNotAllowed
from letterlock.services.accounts.accounts import AccountRef, Session
from letterlock.services.cells import Cell
from letterlock.services.mail.notify import ChangeHub, list_key
from letterlock.storage.models import Appended, Expunged, MailboxRecord

HIERARCHY = "/"
SPECIAL_USES = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
                          "\\Trash"})


def check_mailbox_name(name: str) -> str:
    if not name or name.startswith(HIERARCHY) or name.endswith(HIERARCHY) \
            or HIERARCHY * 2 in name or any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise InvalidInput(f"invalid mailbox name {name!r}")
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX" + HIERARCHY):
        return "INBOX" + name[5:]
    return name


class MailboxFolders:
    """Mailbox-level operations of the mailbox service."""

    hub: ChangeHub

    # Provided by MailboxService.
    def _cell(self, ref: AccountRef) -> Cell:
        raise NotImplementedError

    async def _release_blobs(self, ref: AccountRef, blob_ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def move(self, session: Session, mailbox_id: int, uids: Sequence[int],
                   target: str) -> tuple[list[tuple[int, Appended]], list[Expunged]]:
        raise NotImplementedError

    async def list_mailboxes(self, session: Session) -> list[MailboxRecord]:
        return await self._cell(session.ref).store.list_mailboxes(session.ref.record.id)

    async def get_mailbox(self, session: Session, name: str) -> MailboxRecord:
        return await self._cell(session.ref).store.get_mailbox(session.ref.record.id,
                                                              check_mailbox_name(name))

    async def create_mailbox(self, session: Session, name: str,
                             special_use: str | None = None, *,
                             subscribe: bool = True) -> MailboxRecord:
        """Create ``name`` (and missing parents, unsubscribed). ``subscribe`` adds the
        name to the subscription list; False leaves the list as it is (IMAP CREATE
        does not subscribe, RFC 9051 6.3.4)."""
        name = check_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise InvalidInput(f"unknown special use {special_use}")
        store = self._cell(session.ref).store
        account_id = session.ref.record.id
        # Create missing parents too, as RFC 9051 6.3.4 lets a server do.
        parts = name.split(HIERARCHY)
        existing = {b.name for b in await store.list_mailboxes(account_id)}
        if name in existing:
            raise AlreadyExists(f"mailbox {name} exists")
        for i in range(1, len(parts)):
            parent = HIERARCHY.join(parts[:i])
            if parent not in existing:
                await store.create_mailbox(account_id, parent, None, False)
        box = await store.create_mailbox(account_id, name, special_use, subscribe)
        self.hub.notify(list_key(account_id))
        return box

    async def rename_mailbox(self, session: Session, old: str, new: str) -> None:
        old, new = check_mailbox_name(old), check_mailbox_name(new)
        store = self._cell(session.ref).store
        if old == "INBOX":
            # RFC 9051 6.3.6: renaming INBOX moves its messages to the new name and
            # leaves INBOX empty.
            await self.create_mailbox(session, new)
            inbox = await store.get_mailbox(session.ref.record.id, "INBOX")
            dst = await store.get_mailbox(session.ref.record.id, new)
            uids = [m.uid for m in await store.list_messages(inbox.id, with_summary=False)]
            await self.move(session, inbox.id, uids, dst.name)
            return
        if new == "INBOX":
            raise MailboxNotAllowed("cannot rename onto INBOX")
        if new.startswith(old + HIERARCHY):
            raise MailboxNotAllowed("cannot rename a mailbox into itself")
        box = await store.get_mailbox(session.ref.record.id, old)
        await store.rename_mailbox(session.ref.record.id, old, new)
        self.hub.notify(box.id)

    async def delete_mailbox(self, session: Session, name: str) -> None:
        name = check_mailbox_name(name)
        if name == "INBOX":
            raise MailboxNotAllowed("INBOX cannot be deleted")
        store = self._cell(session.ref).store
        box = await store.get_mailbox(session.ref.record.id, name)
        orphans = await store.delete_mailbox(session.ref.record.id, name)
        self.hub.notify(box.id)
        await self._release_blobs(session.ref, orphans)

    async def subscribe(self, session: Session, name: str, subscribed: bool = True) -> None:
        """Add ``name`` to (or remove it from) the subscription list; the name need not
        be a mailbox (RFC 9051 6.3.7). Raises InvalidInput for an impossible name."""
        await self._cell(session.ref).store.subscribe(
            session.ref.record.id, check_mailbox_name(name), subscribed)
        self.hub.notify(list_key(session.ref.record.id))

    async def subscriptions(self, session: Session) -> list[str]:
        """The subscribed names, mailboxes or not, sorted."""
        return await self._cell(session.ref).store.list_subscriptions(session.ref.record.id)

    async def mailbox_names(self, ref: AccountRef) -> set[str]:
        """The names of ``ref``'s mailboxes, for ``mail import`` (names and
        subscriptions are plain metadata: no session is needed, as for
        :meth:`ensure_mailbox`)."""
        return {b.name for b in await self._cell(ref).store.list_mailboxes(ref.record.id)}

    async def set_subscribed(self, ref: AccountRef, name: str, subscribed: bool) -> None:
        """:meth:`subscribe` for ``mail import``, which has no session."""
        await self._cell(ref).store.subscribe(ref.record.id, check_mailbox_name(name),
                                              subscribed)
        self.hub.notify(list_key(ref.record.id))

    async def ensure_mailbox(self, ref: AccountRef, name: str) -> MailboxRecord:
        """Mailbox ``name`` of ``ref``, created (unsubscribed parents included) if
        missing. Creating a mailbox reveals nothing, so no session is needed."""
        name = check_mailbox_name(name)
        store = self._cell(ref).store
        existing = {b.name: b for b in await store.list_mailboxes(ref.record.id)}
        parts = name.split(HIERARCHY)
        for i in range(1, len(parts) + 1):
            path = HIERARCHY.join(parts[:i])
            if path not in existing:
                existing[path] = await store.create_mailbox(ref.record.id, path, None,
                                                            i == len(parts))
                self.hub.notify(list_key(ref.record.id))
        return existing[name]
