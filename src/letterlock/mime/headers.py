"""Header sections of RFC 5322 / MIME messages: splitting into fields, unfolding,
parameters (RFC 2045, 2231), addresses (RFC 5322 3.4) and encoded words (RFC 2047).

Everything here tolerates malformed input: a broken header yields a best-effort value,
never an exception, because stored mail must always be answerable.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass
from typing import NamedTuple


class Field(NamedTuple):
    """One header field. Make it with :func:`field_of` (``key`` follows ``name``)."""

    name: str
    """Field name as written (case preserved)."""
    raw: bytes
    """The whole field as it appears in the message, continuation lines and final
    line ending included."""
    key: str
    """Lower-case name, for lookups (computed once: lookups are on the delivery path)."""

    @property
    def value(self) -> bytes:
        """Unfolded value without the name, colon and surrounding white space."""
        _, _, rest = self.raw.partition(b":")
        return unfold(rest).strip(b" \t\r\n")


def field_of(name: str, raw: bytes) -> Field:
    return Field(name, raw, name.lower())


def unfold(value: bytes) -> bytes:
    return _FOLD.sub(b"", value)


_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def split_fields(header: bytes) -> list[Field]:
    """The fields of a header section (the blank line and junk before the first
    field are skipped; a line without a colon continues nothing and is dropped)."""
    fields: list[Field] = []
    name = ""
    current: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if current:
                current.append(line)
            continue
        if current:
            fields.append(Field(name, b"".join(current), name.lower()))
            current = []
        if line in (b"\r\n", b"\n", b"\r"):
            break
        head, colon, _ = line.partition(b":")
        head = head.strip()
        if colon and head:
            name = head.decode("latin-1")
            current = [line]
    if current:
        fields.append(Field(name, b"".join(current), name.lower()))
    return fields


def first_values(fields: list[Field]) -> dict[str, Field]:
    """Each field name's first field, by lower-case name (for many lookups)."""
    out: dict[str, Field] = {}
    for f in fields:
        out.setdefault(f.key, f)
    return out


def first_value(fields: list[Field], name: str) -> bytes | None:
    key = name.lower()
    for f in fields:
        if f.key == key:
            return f.value
    return None


def text(value: bytes) -> str:
    """Header bytes as text: UTF-8 (RFC 6532), with undecodable octets kept losslessly
    as surrogate escapes so they can be written back unchanged."""
    return value.decode("utf-8", "surrogateescape")


def to_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


# -- encoded words (RFC 2047) --------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)")


def charset_decode(data: bytes, charset: str) -> str:
    """``data`` in ``charset``, as UTF-8 when the name is unknown or no charset name
    at all (a NUL or non-ASCII octet in it, a codec that is not a text encoding):
    never raises, so one odd message cannot fail a search of its mailbox."""
    charset = charset.split("*", 1)[0]  # RFC 2231 language suffix
    try:
        codecs.lookup(charset)
        return data.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; white space between adjacent words is dropped.
    Bad words are left as written."""
    value = _BETWEEN_WORDS.sub(r"\1", value)

    def one(match: re.Match[str]) -> str:
        charset, enc, payload = match.group(1), match.group(2).upper(), match.group(3)
        try:
            if enc == "B":
                data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
            else:
                data = re.sub(r"=([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)),
                              payload.replace("_", " ")).encode("latin-1", "replace")
        except (binascii.Error, ValueError):
            return match.group(0)
        return charset_decode(data, charset)

    return _ENCODED_WORD.sub(one, value)


def decode_header_text(value: bytes) -> str:
    """A header value as a user would read it (for searching)."""
    raw = value.decode("utf-8", "replace")
    return decode_words(raw)


# -- structured field tokens (RFC 5322 3.2) ------------------------------------------

_SPECIALS = set('()<>[]:;@\\,."')


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The content of the quoted string whose opening quote is just before ``i``
    (backslash escapes resolved), and the index just past its closing quote. An
    unterminated string runs to the end."""
    buf = []
    n = len(text)
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        buf.append(text[i])
        i += 1
    return "".join(buf), i + 1


def _tokens(value: str) -> list[tuple[str, str]]:
    """Tokens of a structured header: (kind, text) with kind one of ``atom``,
    ``quoted``, ``literal`` (domain literal), ``comment`` or a special character.
    Unterminated constructs end at the end of the value."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "(":
            depth = 0
            start = i
            while i < n:
                c = value[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
            body = value[start + 1 : i - 1 if value[i - 1 : i] == ")" else i]
            out.append(("comment", re.sub(r"\\(.)", r"\1", body).strip()))
        elif ch == '"':
            text, i = _quoted(value, i + 1)
            out.append(("quoted", text))
        elif ch == "[":
            j = value.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("literal", value[i:j]))
            i = j
        elif ch in _SPECIALS:
            out.append((ch, ch))
            i += 1
        else:
            j = i
            while j < n and value[j] not in _SPECIALS and value[j] not in " \t\r\n":
                j += 1
            out.append(("atom", value[i:j]))
            i = j
    return out


@dataclass(frozen=True)
class Address:
    """One address as IMAP's ENVELOPE sees it. A group is a start marker
    (``mailbox`` = group name, ``host`` None) ... an end marker (all None)."""

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None

    def to_json(self) -> list[str | None]:
        return [self.name, self.route, self.mailbox, self.host]

    @classmethod
    def from_json(cls, data: list[str | None]) -> Address:
        return cls(data[0], data[1], data[2], data[3])


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words = []
    for kind, tok in tokens:
        if kind in ("atom", "quoted"):
            words.append(tok)
        elif kind == ".":
            words.append(".")
    if not words:
        return None
    text = ""
    for w in words:
        if w == "." or text.endswith("."):
            text += w
        else:
            text = f"{text} {w}" if text else w
    return text


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(route, local part, domain) of an addr-spec or angle-addr content."""
    route = None
    if tokens and tokens[0][0] == "@":
        # obsolete source route: @a,@b:local@domain
        colon = next((i for i, t in enumerate(tokens) if t[0] == ":"), None)
        if colon is not None:
            route = "".join(t for _, t in tokens[:colon])
            tokens = tokens[colon + 1 :]
    at = max((i for i, t in enumerate(tokens) if t[0] == "@"), default=None)
    local_toks = tokens if at is None else tokens[:at]
    domain_toks = [] if at is None else tokens[at + 1 :]
    local = "".join(t for _, t in local_toks) or None
    domain = "".join(t for _, t in domain_toks) or None
    return route, local, domain


def _mailbox(tokens: list[tuple[str, str]]) -> Address | None:
    comments = [t for k, t in tokens if k == "comment"]
    tokens = [t for t in tokens if t[0] != "comment"]
    if not tokens:
        return None
    if any(k == "<" for k, _ in tokens):
        lt = next(i for i, t in enumerate(tokens) if t[0] == "<")
        gt = next((i for i, t in enumerate(tokens) if t[0] == ">" and i > lt), len(tokens))
        route, local, domain = _addr_spec(tokens[lt + 1 : gt])
        name = _phrase(tokens[:lt])
    else:
        route, local, domain = _addr_spec(tokens)
        # "user@host (Real Name)": the comment is the only name there is.
        name = comments[-1] if comments and comments[-1] else None
    if local is None and domain is None and name is None:
        return None
    # A NIL host would read as a group marker in IMAP's ENVELOPE, so a broken
    # address gets explicit placeholders (the convention of established servers).
    return Address(name, route, local or "MISSING_MAILBOX", domain or "MISSING_DOMAIN")


def parse_addresses(value: bytes | None) -> list[Address]:
    """Addresses of an address-list field, groups as start/end markers."""
    if value is None:
        return []
    tokens = _tokens(text(value))
    out: list[Address] = []
    current: list[tuple[str, str]] = []
    in_group = False
    angle = 0
    for kind, tok in tokens:
        if kind == "<":
            angle += 1
        elif kind == ">":
            angle = max(0, angle - 1)
        if angle == 0 and kind == ":" and not in_group and \
                not (current and current[0][0] == "@"):
            out.append(Address(None, None,
                               _phrase([t for t in current if t[0] != "comment"]) or "",
                               None))
            current = []
            in_group = True
        elif angle == 0 and kind == ";" and in_group:
            box = _mailbox(current)
            if box is not None:
                out.append(box)
            out.append(Address(None, None, None, None))
            current = []
            in_group = False
        elif angle == 0 and kind == ",":
            box = _mailbox(current)
            if box is not None:
                out.append(box)
            current = []
        else:
            current.append((kind, tok))
    box = _mailbox(current)
    if box is not None:
        out.append(box)
    if in_group:
        out.append(Address(None, None, None, None))
    return out


# -- parameters (RFC 2045 5.1, RFC 2231) ---------------------------------------------

def parse_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """(first token, [(attribute, value)]) of a Content-Type / Content-Disposition
    value; attributes keep their spelling, values are unquoted."""
    head, _, rest = value.partition(";")
    params: list[tuple[str, str]] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t\r\n;":
            i += 1
        j = i
        while j < n and rest[j] not in "=;":
            j += 1
        attr = rest[i:j].strip()
        if j >= n or rest[j] == ";":
            i = j + 1
            continue
        j += 1
        while j < n and rest[j] in " \t\r\n":
            j += 1
        if j < n and rest[j] == '"':
            val, j = _quoted(rest, j + 1)
            while j < n and rest[j] != ";":
                j += 1
        else:
            k = j
            while k < n and rest[k] != ";":
                k += 1
            val = rest[j:k].strip()
            j = k
        if attr and all(33 <= ord(c) < 127 for c in attr):
            params.append((attr, val))
        i = j + 1
    return head.strip(), params


def param(params: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for attr, val in params:
        if attr.lower() == name:
            return val
    # RFC 2231 continuations: name*0, name*1*, ...
    pieces: dict[int, tuple[bool, str]] = {}
    for attr, val in params:
        m = re.fullmatch(rf"{re.escape(name)}\*(\d+)(\*?)", attr.lower())
        if m:
            pieces[int(m.group(1))] = (bool(m.group(2)), val)
        elif attr.lower() == name + "*":
            pieces[0] = (True, val)
    if not pieces:
        return None
    out = []
    charset = "utf-8"
    for index in sorted(pieces):
        encoded, val = pieces[index]
        if encoded:
            if index == 0 and val.count("'") >= 2:
                charset, _, val = val.split("'", 2)
            data = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), val)
            out.append(charset_decode(data.encode("latin-1", "replace"), charset or "utf-8"))
        else:
            out.append(val)
    return "".join(out)
