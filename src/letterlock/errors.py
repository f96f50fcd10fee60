"""The domain exception tree.

Every error a service can raise derives from :class:`LetterlockError`. Front-ends map
these to their own replies (SMTP codes, IMAP NO/BAD, HTTP status, CLI exit codes) in
their own modules; the domain never imports a protocol.

    LetterlockError
    ├── ConfigError                 bad configuration file or environment value
    ├── NotInitialised              HOME has no letterlock data yet
    ├── InvalidInput                a value supplied by a user or client is malformed
    │   ├── InvalidAddress
    │   └── InvalidMessage          a message that cannot be handled as sent (e.g. signed)
    ├── NotFound
    │   ├── UnknownRegion
    │   ├── UnknownDomain
    │   ├── UnknownAccount
    │   ├── UnknownMailbox
    │   └── UnknownMessage
    ├── AlreadyExists
    ├── Refused                     a well-formed request the rules forbid
    │   ├── MailboxNotAllowed       e.g. deleting INBOX, renaming onto an existing name
    │   ├── MatterOpen              account has an open legal matter
    │   └── QuotaExceeded
    ├── AuthenticationFailed        wrong password or recovery code
    ├── Busy                        too much work queued for this client: try later
    ├── CryptoError                 a sealed object failed to open (tampered or wrong key)
    └── StorageError                the backing store failed; the operation did not happen
"""

from __future__ import annotations


class LetterlockError(Exception):
    """Base of every letterlock domain error."""


class ConfigError(LetterlockError):
    """The configuration file or an environment override is invalid."""


class NotInitialised(LetterlockError):
    """The data directory has not been initialised."""


class InvalidInput(LetterlockError):
    """A value supplied by a user or a client is malformed."""


class InvalidAddress(InvalidInput):
    """An email address is not acceptable."""


class InvalidMessage(InvalidInput):
    """A submitted message cannot be handled as sent (e.g. its header section cannot
    be DKIM-signed): sending it again will not help."""


class NotFound(LetterlockError):
    """The named object does not exist."""


class UnknownRegion(NotFound):
    pass


class UnknownDomain(NotFound):
    pass


class UnknownAccount(NotFound):
    pass


class UnknownMailbox(NotFound):
    pass


class UnknownMessage(NotFound):
    pass


class AlreadyExists(LetterlockError):
    """The object to be created exists already."""


class Refused(LetterlockError):
    """A well-formed request that the rules forbid."""


class MailboxNotAllowed(Refused):
    pass


class MatterOpen(Refused):
    """The account is the target of an open legal matter."""


class QuotaExceeded(Refused):
    pass


class AuthenticationFailed(LetterlockError):
    """Wrong password or recovery code. Deliberately says nothing more."""


class Busy(LetterlockError):
    """Too much work is already queued for this client (e.g. password checks): try
    again later. Says nothing about whether the request would have succeeded."""


class CryptoError(LetterlockError):
    """A sealed object could not be opened: wrong key, or the data was altered."""


class StorageError(LetterlockError):
    """The backing store failed; the operation did not take effect."""
