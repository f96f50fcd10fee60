"""Modified UTF-7 mailbox names: the codec lives in :mod:`letterlock.mime.utf7` (the
Maildir export needs it too); IMAP code keeps importing it from here."""

from letterlock.mime.utf7 import decode, encode

__all__ = ["decode", "encode"]
