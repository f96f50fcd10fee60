"""MIME structure of a message (RFC 2045/2046): the part tree with exact offsets,
sizes and line counts, and the envelope (RFC 5322 originator and destination fields).

The tree is computed once at delivery and kept (sealed) in the message summary, so
IMAP's ENVELOPE and BODYSTRUCTURE, and the location of any body section, are known
without opening the full message. Parsing never fails: malformed structure degrades
to the most reasonable reading (missing boundaries run to the end, bad content types
become text/plain, nesting deeper than MAX_DEPTH is treated as opaque data).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from letterlock.mime.headers import (
    Address,
    Field,
    charset_decode,
    first_values,
    param,
    parse_addresses,
    parse_params,
    split_fields,
    text,
)

MAX_DEPTH = 50


@dataclass(frozen=True)
class Envelope:
    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None

    def to_json(self) -> list[Any]:
        return [self.date, self.subject,
                *([a.to_json() for a in lst] for lst in (self.from_, self.sender,
                                                         self.reply_to, self.to, self.cc,
                                                         self.bcc)),
                self.in_reply_to, self.message_id]

    @classmethod
    def from_json(cls, data: list[Any]) -> Envelope:
        f, s, r, t, c, b = (tuple(Address.from_json(a) for a in lst) for lst in data[2:8])
        return cls(data[0], data[1], f, s, r, t, c, b, data[8], data[9])


def envelope_of(fields: list[Field]) -> Envelope:
    first = first_values(fields)

    def value(name: str) -> str | None:
        f = first.get(name)
        return None if f is None else text(f.value)

    def addrs(name: str) -> tuple[Address, ...]:
        f = first.get(name)
        return () if f is None else tuple(parse_addresses(f.value))

    from_ = addrs("from")
    # RFC 9051 7.5.2: an absent or empty Sender / Reply-To takes From's value.
    sender = addrs("sender") or from_
    reply_to = addrs("reply-to") or from_
    return Envelope(value("date"), value("subject"), from_, sender, reply_to, addrs("to"),
                    addrs("cc"), addrs("bcc"), value("in-reply-to"), value("message-id"))


@dataclass(frozen=True)
class Part:
    """One body part. Offsets index the whole raw message; ``header_start`` ..
    ``body_start`` is the part's MIME header (blank line included), ``body_start`` ..
    ``end`` its body."""

    header_start: int
    body_start: int
    end: int
    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    id: str | None
    description: str | None
    encoding: str | None
    md5: str | None
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None
    language: tuple[str, ...] | None
    location: str | None
    lines: int
    children: tuple[Part, ...] = ()
    """Sub-parts of a multipart; for message/rfc822 the one encapsulated message."""
    envelope: Envelope | None = None
    """For message/rfc822: the encapsulated message's envelope."""

    @property
    def size(self) -> int:
        return self.end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type.lower() == "multipart"

    @property
    def is_message(self) -> bool:
        return self.type.lower() == "message" and self.subtype.lower() in ("rfc822", "global")

    def to_json(self) -> list[Any]:
        return [self.header_start, self.body_start, self.end, self.type, self.subtype,
                [list(p) for p in self.params], self.id, self.description, self.encoding,
                self.md5,
                None if self.disposition is None else
                [self.disposition[0], [list(p) for p in self.disposition[1]]],
                None if self.language is None else list(self.language), self.location,
                self.lines, [c.to_json() for c in self.children],
                None if self.envelope is None else self.envelope.to_json()]

    @classmethod
    def from_json(cls, d: list[Any]) -> Part:
        disp = None if d[10] is None else (d[10][0], tuple((a, b) for a, b in d[10][1]))
        return cls(d[0], d[1], d[2], d[3], d[4], tuple((a, b) for a, b in d[5]), d[6], d[7],
                   d[8], d[9], disp, None if d[11] is None else tuple(d[11]), d[12], d[13],
                   tuple(cls.from_json(c) for c in d[14]),
                   None if d[15] is None else Envelope.from_json(d[15]))


def _header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just after the blank line ending the header that begins at ``start``
    (``start`` itself if the part begins with a blank line; ``end`` if none)."""
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    # The first line break followed by an empty line (CRLF or bare LF).
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 2)
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else end


def count_lines(data: bytes) -> int:
    """Body lines as established servers count them: line feeds. A part's last line
    has none when the CRLF before the next boundary belongs to the boundary
    (RFC 2046 5.1.1)."""
    return data.count(b"\n")


def _clean(value: bytes | None) -> str | None:
    return None if value is None else text(value)


def _parse(raw: bytes, start: int, end: int, depth: int, default_type: tuple[str, str],
           fields: list[Field] | None = None) -> Part:
    body_start = _header_end(raw, start, end)
    if fields is None:
        fields = split_fields(raw[start:body_start])
    first = first_values(fields)

    def first_value(name: str) -> bytes | None:
        f = first.get(name)
        return None if f is None else f.value

    ctype_raw = first_value("content-type")
    mtype, subtype = default_type
    params: list[tuple[str, str]] = []
    if ctype_raw is not None:
        head, params = parse_params(text(ctype_raw))
        main, slash, sub = head.partition("/")
        main, sub = main.strip(), sub.strip()
        if slash and main and sub and re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", main + sub):
            mtype, subtype = main, sub
        else:
            mtype, subtype, params = "text", "plain", []
    if mtype.lower() == "text" and not params:
        params = [("charset", "us-ascii")]  # RFC 2045 5.2 default
    disposition = None
    disp_raw = first_value("content-disposition")
    if disp_raw is not None:
        dhead, dparams = parse_params(text(disp_raw))
        if dhead:
            disposition = (dhead, tuple(dparams))
    lang_raw = first_value("content-language")
    language = None
    if lang_raw is not None:
        langs = [x.strip() for x in text(lang_raw).split(",") if x.strip()]
        language = tuple(langs) or None
    enc = _clean(first_value("content-transfer-encoding"))
    encoding = enc.strip() if enc else None
    lines = count_lines(raw[body_start:end])

    def make(mtype: str, subtype: str, params: list[tuple[str, str]],
             children: tuple[Part, ...] = (), envelope: Envelope | None = None) -> Part:
        return Part(start, body_start, end, mtype, subtype, tuple(params),
                    _clean(first_value("content-id")),
                    _clean(first_value("content-description")), encoding,
                    _clean(first_value("content-md5")), disposition, language,
                    _clean(first_value("content-location")), lines, children,
                    envelope)

    boundary = param(params, "boundary") if mtype.lower() == "multipart" else None
    if mtype.lower() == "multipart" and boundary and depth < MAX_DEPTH:
        child_default = ("message", "rfc822") if subtype.lower() == "digest" \
            else ("text", "plain")
        children = tuple(_parse(raw, s, e, depth + 1, child_default)
                         for s, e in _split_multipart(raw, body_start, end, boundary))
        return make(mtype, subtype, params, children)
    if mtype.lower() == "multipart":
        # No boundary (or too deep): an opaque body, still a valid structure.
        mtype, subtype = "application", "octet-stream"
    if mtype.lower() == "message" and subtype.lower() in ("rfc822", "global") \
            and depth < MAX_DEPTH and (encoding or "7bit").lower() in (
                "7bit", "8bit", "binary"):
        inner = _parse(raw, body_start, end, depth + 1, ("text", "plain"))
        env = envelope_of(split_fields(raw[body_start:inner.body_start]))
        return make(mtype, subtype, params, (inner,), env)
    if mtype.lower() == "message" and subtype.lower() in ("rfc822", "global"):
        mtype, subtype = "application", "octet-stream"
    return make(mtype, subtype, params)


def _split_multipart(raw: bytes, start: int, end: int, boundary: str,
                     ) -> list[tuple[int, int]]:
    """(start, end) of each body part between delimiter lines. A part ends before
    the line break that precedes the next delimiter (RFC 2046 5.1.1)."""
    delim = b"--" + boundary.encode("utf-8", "surrogateescape")
    parts: list[tuple[int, int]] = []
    pos = start
    part_start: int | None = None
    while pos <= end:
        found = raw.find(delim, pos, end)
        if found < 0:
            break
        at_line_start = found == start or raw[found - 1 : found] == b"\n"
        after = found + len(delim)
        if not at_line_start:
            pos = after
            continue
        closing = raw.startswith(b"--", after)
        nl = raw.find(b"\n", after, end)
        line_end = end if nl < 0 else nl + 1
        # The delimiter line may only carry trailing white space.
        trailer = raw[after + (2 if closing else 0) : line_end].strip(b" \t\r\n")
        if trailer:
            pos = after
            continue
        if part_start is not None:
            part_end = found
            if part_end > part_start and raw[part_end - 1 : part_end] == b"\n":
                part_end -= 1
                if part_end > part_start and raw[part_end - 1 : part_end] == b"\r":
                    part_end -= 1
            parts.append((part_start, max(part_start, part_end)))
        if closing:
            return parts
        part_start = line_end
        pos = line_end
    if part_start is not None:
        parts.append((part_start, end))
    return parts


def header_end(raw: bytes) -> int:
    """Offset of a message's body: just after the blank line ending its header."""
    return _header_end(raw, 0, len(raw))


def parse(raw: bytes, fields: list[Field] | None = None) -> Part:
    """The part tree of a whole message (its top part has the message header).
    ``fields``: the message header's fields, if the caller has split them already
    (``split_fields(raw[:header_end(raw)])``)."""
    return _parse(raw, 0, len(raw), 0, ("text", "plain"), fields)


# -- sections (RFC 9051 6.4.5) -------------------------------------------------------

@dataclass(frozen=True)
class Located:
    """What a section designates: the bytes to send and the part concerned."""

    start: int
    end: int
    part: Part | None


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The body part at ``path`` (1-based numbers, RFC 9051 6.4.5). A non-multipart
    body is its own part 1; after a message/rfc822 part, numbering continues inside
    the encapsulated message."""
    node = root
    for i, number in enumerate(path):
        if i > 0:
            if node.is_message and node.children:
                node = node.children[0]
            elif not node.is_multipart:
                return None
        if node.is_multipart:
            if not 1 <= number <= len(node.children):
                return None
            node = node.children[number - 1]
        elif number != 1:
            return None
    return node


def message_of(root: Part, path: tuple[int, ...]) -> Part | None:
    """The message whose HEADER/TEXT ``path`` names: the top message for (), else a
    message/rfc822 part's encapsulated message."""
    if not path:
        return root
    part = find_part(root, path)
    if part is None or not part.is_message or not part.children:
        return None
    return part.children[0]


def header_of(raw: bytes, msg: Part) -> bytes:
    return raw[msg.header_start : msg.body_start]


def decode_body(data: bytes, encoding: str | None) -> bytes | None:
    """Content-Transfer-Encoding decoded; None for an encoding we do not know."""
    enc = (encoding or "7bit").lower()
    if enc in ("7bit", "8bit", "binary"):
        return data
    if enc == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 \
            else cleaned + b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if enc == "quoted-printable":
        return decode_quoted_printable(data)
    return None


_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_quoted_printable(data: bytes) -> bytes:
    """RFC 2045 6.7: trailing white space is transport padding and dropped, a final
    "=" (even before such padding) is a soft line break, "=XX" is an octet, and any
    other "=" is kept as written. Line breaks keep their original form."""
    out = bytearray()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        line = line.rstrip(b" \t")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), line)
        if not soft and i < len(lines) - 1:
            out += b"\r\n" if crlf else b"\n"
    return bytes(out)


def part_text(raw: bytes, part: Part) -> str:
    """A text part's content as text (transfer encoding and charset decoded)."""
    data = decode_body(raw[part.body_start : part.end], part.encoding) or b""
    charset = param(list(part.params), "charset") or "utf-8"
    return charset_decode(data, charset)


def walk(part: Part) -> list[Part]:
    out = [part]
    for child in part.children:
        out += walk(child)
    return out
