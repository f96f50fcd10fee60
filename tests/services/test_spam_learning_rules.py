"""Which filings teach rspamd what (services/mail/spam_learning.py), as Dovecot's
IMAPSieve rules for rspamd: into Junk is spam, out of Junk is ham unless to Trash."""

from __future__ import annotations

from letterlock.services.mail.filing import Filing
from letterlock.services.mail.spam_learning import learn_as
from letterlock.storage.models import MailboxRecord


def box(name: str, special: str | None = None) -> MailboxRecord:
    return MailboxRecord(1, "a", name, 1, 1, 1, special, True, 0)


def filing(source: MailboxRecord | None, target: MailboxRecord) -> Filing:
    return Filing(None, None, source, target, (1,))  # type: ignore[arg-type]


def test_rules() -> None:
    inbox, junk, trash = box("INBOX"), box("Junk", "\\Junk"), box("Trash", "\\Trash")
    spam_folder = box("Spam", "\\Junk")  # a renamed Junk keeps its special use
    assert learn_as(filing(inbox, junk)) == "spam"
    assert learn_as(filing(inbox, spam_folder)) == "spam"
    assert learn_as(filing(None, junk)) == "spam"  # APPEND into Junk
    assert learn_as(filing(junk, inbox)) == "ham"
    assert learn_as(filing(junk, box("Archive/2026"))) == "ham"
    assert learn_as(filing(junk, trash)) is None  # deleting spam is not "not spam"
    assert learn_as(filing(junk, box("trash"))) is None
    assert learn_as(filing(junk, spam_folder)) is None
    assert learn_as(filing(inbox, box("Archive"))) is None
    assert learn_as(filing(None, inbox)) is None
