"""IMAP renderings kept in each message's sealed digest (services/mail/digests.py):
ENVELOPE, BODYSTRUCTURE and BODY, encoded once when the digest is made, so a FETCH of
them costs what a header FETCH costs; and the header fields as SEARCH compares them.

Each is kept in its plain form (non-ASCII sent as literals) and, only where it
differs, in the form for sessions that enabled UTF8=ACCEPT / IMAP4rev2; an empty view
means "the same as the plain one" (ENVELOPE is never empty, BODYSTRUCTURE only when
the message's part tree is unknown). Change ``VERSION`` whenever these encodings
change: packs made by another version are made again.
"""

from __future__ import annotations

from collections.abc import Callable

from letterlock.imap import encoding, search_text
from letterlock.mime import summary as summaries
from letterlock.services.mail.digests import Digest, Views

VERSION = b"imap-views-4"  # 4: no NUL in strings (encoding.py)
ENVELOPE, BODYSTRUCTURE, BODY, ENVELOPE8, BODYSTRUCTURE8, BODY8, SEARCH = range(7)
"""SEARCH: the header fields as SEARCH compares them (imap/search_text.py)."""


def make(summary: summaries.MessageSummary) -> tuple[bytes, ...]:
    env = encoding.envelope(summaries.envelope_of(summary))
    plain_env = encoding.encode(env)
    utf8_env = _utf8_variant(plain_env, lambda: encoding.encode(env, utf8=True))
    searched = search_text.encode(summary.header)
    tree = summaries.structure_of(summary)
    if tree is None:
        return (plain_env, b"", b"", utf8_env, b"", b"", searched)
    ext = encoding.body_structure(tree, True)
    basic = encoding.body_structure(tree, False)
    return (plain_env, ext, basic, utf8_env,
            _utf8_variant(ext, lambda: encoding.body_structure(tree, True, utf8=True)),
            _utf8_variant(basic, lambda: encoding.body_structure(tree, False, utf8=True)),
            searched)


def _utf8_variant(plain: bytes, render: Callable[[], bytes]) -> bytes:
    """The UTF8=ACCEPT rendering where it differs from ``plain``, else b"". The two
    differ only in strings the plain form must send as literals (encoding.string),
    so a rendering without one is the same in both and is not made twice."""
    if b"}\r\n" not in plain:
        return b""
    variant = render()
    return b"" if variant == plain else variant


def view(digest: Digest, which: int, utf8: bool) -> bytes:
    """The rendering ``which`` (ENVELOPE, BODYSTRUCTURE or BODY) for a session; b""
    if the digest does not have it (the caller renders from the message)."""
    views = digest.views
    if utf8:
        special = views[which + 3]
        if special:
            return special
    return views[which]


VIEWS = Views(VERSION, 7, make, search_text.encode)
