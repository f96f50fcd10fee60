"""Base subjects (RFC 5256 2.1): the subject with the reply/forward markers and list
tags that mail software adds taken away, as SORT (SUBJECT) and THREAD compare it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from letterlock.mime.headers import decode_words

_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_REFWD = re.compile(rf"^\s*(?:re|fwd?)\s*(?:{_BLOB})?:\s*", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^\s*{_BLOB}")
_FWD_WRAP = re.compile(r"^\[fwd:(.*)\]$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class BaseSubject:
    text: str
    """Upper-cased base subject ("" when nothing is left)."""
    reply: bool
    """Whether extraction removed a reply/forward marker (RFC 5256 section 4's "reply
    or forward"): a Re:/Fw:/Fwd: leader, a (fwd) trailer or a [fwd: ...] wrapper; a
    list tag alone does not count."""


def extract(subject: str) -> BaseSubject:
    """RFC 5256 2.1 steps 1-7 on a raw (possibly encoded-word) subject."""
    text = re.sub(r"\s+", " ", decode_words(subject)).strip()
    reply = False
    while True:
        # (2) trailers: "(fwd)" and white space, as long as any is left.
        while (m := _TRAILER.search(text)) is not None:
            text = text[: m.start()]
            reply = True
        text = text.rstrip()
        # (3)-(5) leaders (Re:, Fwd:, white space) and leading [blobs].
        while True:
            changed = False
            if (m := _REFWD.match(text)) is not None:
                text = text[m.end():]
                changed = reply = True
            m = _LEADING_BLOB.match(text)
            if m and text[m.end():].strip():
                text = text[m.end():]
                changed = True
            if text[:1].isspace():
                text = text.lstrip()
                changed = True
            if not changed:
                break
        # (6) "[fwd: ...]" around the rest: unwrap and start again from (2).
        if (m := _FWD_WRAP.match(text)) is not None:
            text = m.group(1)
            reply = True
            continue
        return BaseSubject(text.upper(), reply)


def base_subject(subject: str) -> str:
    """The base subject alone, upper-cased (SORT's SUBJECT key)."""
    return extract(subject).text
