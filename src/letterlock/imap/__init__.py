"""letterlock's IMAP4rev1/IMAP4rev2 server (RFC 3501, RFC 9051 and extensions).

Layout: :mod:`.parsing` (pure command parser), :mod:`.state` (which command runs in
which session state, checked in one place), :mod:`.commands` (one module per command
group, calling the services), :mod:`.encoding` (response syntax), :mod:`.errors`
(domain errors to NO/BAD), :mod:`.server` (asyncio listeners, framing, TLS, limits).
"""

from letterlock.imap.server import ImapServer

__all__ = ["ImapServer"]
