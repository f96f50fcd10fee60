"""Response encoding (RFC 9051 section 9 / 7): strings, lists, dates, and the
ENVELOPE / BODYSTRUCTURE forms built from the MIME library's values.

``encode(value)`` turns nested Python values into wire bytes: None is NIL, int a
number, bytes or str a string (quoted when safe, literal otherwise), :class:`Atom`
is sent as written, and lists/tuples are parenthesised.

NUL may appear in no string and no literal but a literal8 (RFC 9051 4.3: literal is
``*CHAR8``), yet a message may carry it anywhere (a header field, a MIME parameter,
a body). Every string and literal made here sends it as 0x80, as Dovecot does: the
octet is visibly not text, and the length stays what the client was told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Union

from letterlock.imap.parsing.primitives import MONTHS
from letterlock.mime.headers import Address, param, to_bytes
from letterlock.mime.structure import Envelope, Part


@dataclass(frozen=True)
class Atom:
    text: str


@dataclass(frozen=True)
class Literal:
    """Always sent as a literal (``~{n}`` literal8 when ``binary``)."""

    data: bytes
    binary: bool = False


Value = Union[None, int, bytes, str, Atom, Literal, "list[Value]", "tuple[Value, ...]"]

NIL = b"NIL"
NUL_STANDIN = b"\x80"
"""What a NUL octet of a message is sent as (see above)."""


_NOT_QUOTABLE = re.compile(rb"[\x00\r\n\x80-\xff]")
_NOT_QUOTABLE_UTF8 = re.compile(rb"[\x00\r\n]")


def _quotable(data: bytes) -> bool:
    return len(data) < 1024 and _NOT_QUOTABLE.search(data) is None


def string(data: bytes | str, utf8: bool = False) -> bytes:
    """A string as quoted (when every octet allows it) or a literal. With UTF8=ACCEPT
    enabled, valid UTF-8 may be quoted too (RFC 9051 ``quoted`` allows UTF8-2..4)."""
    raw = to_bytes(data) if isinstance(data, str) else data
    if b"\x00" in raw:
        raw = raw.replace(b"\x00", NUL_STANDIN)
    if _quotable(raw) or (utf8 and len(raw) < 1024 and _NOT_QUOTABLE_UTF8.search(raw) is None
                          and _valid_utf8(raw)):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(raw) + raw


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def literal(data: bytes, binary: bool = False) -> bytes:
    """A literal, or with ``binary`` a literal8 (BINARY, RFC 9051 6.4.5), the only
    kind that may carry NUL."""
    if binary:
        return b"~{%d}\r\n" % len(data) + data
    if b"\x00" in data:
        data = data.replace(b"\x00", NUL_STANDIN)
    return b"{%d}\r\n" % len(data) + data


def nstring(data: bytes | str | None, utf8: bool = False) -> bytes:
    return NIL if data is None else string(data, utf8)


def astring(data: str, utf8: bool = False) -> bytes:
    raw = to_bytes(data)
    if raw and all(0x21 <= c < 0x7F and c not in b'(){%*"\\' for c in raw):
        return raw
    return string(raw, utf8)


def encode(value: Value, utf8: bool = False) -> bytes:
    # Most frequent kinds first: this runs for every field of every ENVELOPE and
    # BODYSTRUCTURE in a large FETCH.
    if isinstance(value, (str, bytes)):
        return string(value, utf8)
    if value is None:
        return NIL
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join([encode(v, utf8) for v in value]) + b")"
    if isinstance(value, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, Atom):
        return value.text.encode("utf-8")
    return literal(value.data, value.binary)


def internaldate(when: datetime) -> bytes:
    """``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (RFC 9051 date-time)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (f'"{when.day:2d}-{MONTHS[when.month - 1]}-{when.year:04d} '
            f'{when.hour:02d}:{when.minute:02d}:{when.second:02d} '
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"').encode("ascii")


# -- ENVELOPE and BODYSTRUCTURE -------------------------------------------------------

def _addresses(addrs: tuple[Address, ...]) -> Value:
    if not addrs:
        return None
    return [[a.name, a.route, a.mailbox, a.host] for a in addrs]


def envelope(env: Envelope) -> Value:
    return [env.date, env.subject, _addresses(env.from_), _addresses(env.sender),
            _addresses(env.reply_to), _addresses(env.to), _addresses(env.cc),
            _addresses(env.bcc), env.in_reply_to, env.message_id]


def _params(params: tuple[tuple[str, str], ...]) -> Value:
    if not params:
        return None
    return [x for pair in params for x in pair]


def body_structure(part: Part, extensible: bool, utf8: bool = False) -> bytes:
    """BODYSTRUCTURE (``extensible``) or BODY of a part (RFC 9051 7.5.2), encoded."""
    if part.is_multipart:
        if part.children:
            inner = b"".join(body_structure(c, extensible, utf8) for c in part.children)
        else:
            # A multipart without parts still needs one body (body-type-mpart).
            inner = encode(["text", "plain", ["charset", "us-ascii"], None, None, "7bit", 0,
                            0])
        rest: list[Value] = [part.subtype]
        if extensible:
            rest += [_params(part.params), _disposition(part), _language(part),
                     part.location]
        return b"(" + inner + b" " + b" ".join(encode(v, utf8) for v in rest) + b")"
    encoding = part.encoding or "7bit"
    head: list[Value] = [part.type, part.subtype, _params(part.params), part.id,
                         part.description, encoding, part.size]
    out = [encode(v, utf8) for v in head]
    if part.is_message and part.children and part.envelope is not None:
        out += [encode(envelope(part.envelope), utf8),
                body_structure(part.children[0], extensible, utf8), encode(part.lines)]
    elif part.type.lower() == "text":
        out.append(encode(part.lines))
    if extensible:
        out += [encode(v, utf8) for v in (part.md5, _disposition(part), _language(part),
                                          part.location)]
    return b"(" + b" ".join(out) + b")"


def _disposition(part: Part) -> Value:
    if part.disposition is None:
        return None
    return [part.disposition[0], _params(part.disposition[1])]


def _language(part: Part) -> Value:
    if part.language is None:
        return None
    if len(part.language) == 1:
        return part.language[0]
    return list(part.language)


def charset_of(part: Part) -> str | None:
    return param(list(part.params), "charset")
