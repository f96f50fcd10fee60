"""Where mail set aside as junk goes, chosen by its owner (the privacy center's Junk
tab): the Junk mailbox (the default, as Dovecot with rspamd and mailcow file it), or
INBOX with the ``$Junk`` keyword, for people whose mail program shows junk by its flag
or who check one folder only. Either way the message carries ``X-Spam-Status`` and
filters do not run on it; a move out of Junk or into it still teaches rspamd.

The choice is an option of the account's filter store (storage/sieve_contracts.py),
in its home region; delivery reads it through :meth:`FilterRunner.junk_in_inbox`.
"""

from __future__ import annotations

from letterlock.errors import InvalidInput
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail.filters.scripts import FilterService
from letterlock.services.operations.log_events import LogEvent, event

JUNK_OPTION = "junk"
FOLDER = "folder"
INBOX = "inbox"
CHOICES = (FOLDER, INBOX)
JUNK_KEYWORD = "$Junk"
"""The IMAP keyword mail programs (Thunderbird, Apple Mail) read as "this is junk"."""


async def junk_choice(filters: FilterService, ref: AccountRef) -> str:
    """``folder`` or ``inbox``."""
    value = await filters.store(ref.region).option(ref.address, JUNK_OPTION)
    return INBOX if value == INBOX else FOLDER


async def set_junk_choice(
    filters: FilterService, ref: AccountRef, choice: str, *, via: str = "web"
) -> None:
    """Raises InvalidInput for anything but ``folder`` or ``inbox``."""
    if choice not in CHOICES:
        raise InvalidInput(f"junk goes to the Junk folder or the Inbox, not {choice[:20]!r}")
    await filters.store(ref.region).set_option(
        ref.address, JUNK_OPTION, None if choice == FOLDER else choice
    )
    event(LogEvent.FILTER_CHANGED, account=ref.address, change=f"junk-{choice}", via=via)
