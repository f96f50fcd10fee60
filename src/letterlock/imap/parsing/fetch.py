"""FETCH data items (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ)."""

from __future__ import annotations

from dataclasses import dataclass

from letterlock.imap.parsing.primitives import (
    ParseError,
    astring,
    expect,
    fail,
    number,
    nz_number,
    paren_list,
    peek,
    peek_ci,
    sp,
)

SIMPLE = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
          "RFC822.HEADER", "RFC822.TEXT", "RFC822", "MODSEQ", "BODY")
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


@dataclass(frozen=True)
class Section:
    part: tuple[int, ...] = ()
    text: str | None = None
    """None (the whole part), HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME."""
    fields: tuple[str, ...] = ()

    def spec(self) -> str:
        """The section as echoed in the response (field names upper-cased)."""
        out = ".".join(str(n) for n in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
        if self.fields:
            names = " ".join(_field_name(f) for f in self.fields)
            out += f" ({names})"
        return out


def _field_name(name: str) -> str:
    if name and all(33 <= ord(c) < 127 and c not in '(){%*"\\]' for c in name):
        return name.upper()
    return '"' + name.upper().replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchItem:
    name: str
    """UID, FLAGS, ..., BODY (structure) or, with a section: BODY, BINARY, BINARY.SIZE."""
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None
    """(origin, count) of ``<origin.count>``."""

    @property
    def needs_body(self) -> bool:
        if self.name in ("RFC822", "RFC822.TEXT", "BINARY", "BINARY.SIZE"):
            return True
        if self.name == "BODY" and self.section is not None:
            s = self.section
            return bool(s.part) or s.text not in ("HEADER", "HEADER.FIELDS",
                                                  "HEADER.FIELDS.NOT")
        return False

    @property
    def sets_seen(self) -> bool:
        return (self.name == "BODY" and self.section is not None and not self.peek) or \
            (self.name == "BINARY" and not self.peek) or self.name in ("RFC822",
                                                                       "RFC822.TEXT")


@dataclass(frozen=True)
class FetchModifiers:
    changedsince: int | None = None
    vanished: bool = False


def _section(buf: bytes, pos: int, binary: bool) -> tuple[Section, int]:
    pos = expect(buf, pos, b"[")
    parts: list[int] = []
    text: str | None = None
    fields: list[str] = []
    while buf[pos : pos + 1].isdigit():
        n, pos = nz_number(buf, pos)
        parts.append(n)
        if peek(buf, pos, b"."):
            pos += 1
            if not buf[pos : pos + 1].isdigit():
                break
        else:
            break
    if not peek(buf, pos, b"]"):
        if binary:
            raise fail("part number", buf, pos)
        for name in ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME"):
            if peek_ci(buf, pos, name.encode()):
                text = name
                pos += len(name)
                break
        else:
            raise fail("section text", buf, pos)
        if text == "MIME" and not parts:
            raise ParseError("MIME needs a part number")
        if text and text.startswith("HEADER.FIELDS"):
            names, pos = paren_list(buf, sp(buf, pos), astring, empty=False)
            fields = [n.decode("utf-8", "replace") for n in names]
    elif parts and buf[pos - 1 : pos] == b".":
        raise fail("section text", buf, pos)
    pos = expect(buf, pos, b"]")
    return Section(tuple(parts), text, tuple(fields)), pos


def _partial(buf: bytes, pos: int) -> tuple[tuple[int, int] | None, int]:
    if not peek(buf, pos, b"<"):
        return None, pos
    origin, pos = number(buf, pos + 1)
    pos = expect(buf, pos, b".")
    count, pos = nz_number(buf, pos)
    pos = expect(buf, pos, b">")
    return (origin, count), pos


def fetch_item(buf: bytes, pos: int) -> tuple[FetchItem, int]:
    for name, binary in (("BINARY.PEEK", True), ("BINARY.SIZE", True), ("BINARY", True),
                         ("BODY.PEEK", False), ("BODY", False)):
        if peek_ci(buf, pos, name.encode() + b"["):
            section, pos = _section(buf, pos + len(name), binary)
            partial = None
            if name != "BINARY.SIZE":
                partial, pos = _partial(buf, pos)
            return FetchItem(name.split(".PEEK")[0], section, name.endswith(".PEEK"),
                             partial), pos
    for name in sorted(SIMPLE, key=len, reverse=True):
        if peek_ci(buf, pos, name.encode()):
            end = pos + len(name)
            if end < len(buf) and buf[end : end + 1] not in (b" ", b")"):
                continue
            return FetchItem(name), end
    raise fail("fetch attribute", buf, pos)


def fetch_items(buf: bytes, pos: int) -> tuple[list[FetchItem], int]:
    """fetch-att list: a macro, one item, or a parenthesised list."""
    for macro, names in MACROS.items():
        if peek_ci(buf, pos, macro.encode()):
            end = pos + len(macro)
            if end >= len(buf) or buf[end : end + 1] == b" ":
                return [FetchItem(n) for n in names], end
    if peek(buf, pos, b"("):
        return paren_list(buf, pos, fetch_item, empty=False)
    item, pos = fetch_item(buf, pos)
    return [item], pos


def fetch_modifiers(buf: bytes, pos: int) -> tuple[FetchModifiers, int]:
    pos = expect(buf, pos, b"(")
    changed: int | None = None
    vanished = False
    while True:
        if peek_ci(buf, pos, b"CHANGEDSINCE "):
            changed, pos = number(buf, pos + 13, 2**63 - 1)
        elif peek_ci(buf, pos, b"VANISHED"):
            vanished = True
            pos += 8
        else:
            raise fail("CHANGEDSINCE or VANISHED", buf, pos)
        if peek(buf, pos, b")"):
            pos += 1
            break
        pos = sp(buf, pos)
    if vanished and changed is None:
        raise ParseError("VANISHED needs CHANGEDSINCE")
    return FetchModifiers(changed, vanished), pos
