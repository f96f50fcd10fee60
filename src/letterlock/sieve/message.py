"""The message as Sieve tests see it: decoded header values, addresses, body text.
Parsed lazily, once per run."""

from __future__ import annotations

import html
import re
from functools import cached_property

from letterlock.mime import structure
from letterlock.mime.headers import (
    Field,
    charset_decode,
    decode_header_text,
    parse_addresses,
    split_fields,
)

_HIDDEN_START = re.compile(r"<script\b|<style\b|<!--", re.IGNORECASE)
_BREAK = re.compile(r"<(?:br|p|div|tr|li|h[1-6])\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")


def _visible(markup: str) -> str:
    """``markup`` without script, style and comments; one left open hides the rest,
    as in a browser. Each search starts where the last ended: linear time."""
    lower = markup.lower()
    out: list[str] = []
    pos = 0
    while (m := _HIDDEN_START.search(markup, pos)) is not None:
        out.append(markup[pos:m.start()])
        opener = lower[m.start():m.end()]
        closer = "-->" if opener == "<!--" else f"</{opener[1:]}"
        end = lower.find(closer, m.end())
        if end < 0:
            return "".join(out)
        close = lower.find(">", end)
        pos = len(markup) if close < 0 else close + 1
    out.append(markup[pos:])
    return "".join(out)


def html_text(markup: str) -> str:
    """HTML as the text a reader sees: script, style and comments dropped, block
    tags as line breaks, other tags removed, character references resolved. A tag
    pattern stops at the next "<", so time stays linear in the markup."""
    text = _BREAK.sub("\n", _visible(markup))
    return html.unescape(_TAG.sub("", text))


class Message:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    @cached_property
    def body_start(self) -> int:
        return structure.header_end(self.raw)

    @cached_property
    def fields(self) -> list[Field]:
        return split_fields(self.raw[: self.body_start])

    def raw_values(self, name: str) -> list[bytes]:
        key = name.lower()
        return [f.value for f in self.fields if f.key == key]

    def headers(self, name: str) -> list[str]:
        """Every value of the named header, unfolded, RFC 2047 words decoded."""
        return [decode_header_text(v).strip() for v in self.raw_values(name)]

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(f.key == key for f in self.fields)

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(local part, domain) of each address in the named headers (group
        markers skipped, display names decoded away)."""
        out: list[tuple[str, str]] = []
        for value in self.raw_values(name):
            for a in parse_addresses(value):
                if a.mailbox is not None and a.host is not None:  # not a group marker
                    # parse_addresses marks a bare local part as IMAP does
                    out.append((a.mailbox, "" if a.host == "MISSING_DOMAIN" else a.host))
        return out

    @cached_property
    def tree(self) -> structure.Part:
        return structure.parse(self.raw)

    def body_raw(self) -> str:
        return self.raw[self.body_start:].decode("utf-8", "replace")

    def body_parts(self, types: tuple[str, ...] | None) -> list[str]:
        """Decoded content of the leaf parts whose type matches one of ``types``
        (RFC 5173 :content: "" any, "text" any text/*, "text/html" exactly);
        ``None`` means :text, the text parts with HTML turned into text."""
        out: list[str] = []
        for part in structure.walk(self.tree):
            if part.is_multipart or part.is_message:
                continue
            kind = f"{part.type}/{part.subtype}".lower()
            if types is None:
                if part.type.lower() != "text" or _is_attachment(part):
                    continue
            elif not any(t == "" or t.lower() in (kind, part.type.lower()) for t in types):
                continue
            out.append(self._part_text(part, kind))
        return out

    def _part_text(self, part: structure.Part, kind: str) -> str:
        data = structure.decode_body(self.raw[part.body_start:part.end], part.encoding)
        charset = dict((k.lower(), v) for k, v in part.params).get("charset", "utf-8")
        text = charset_decode(data or b"", charset)
        return html_text(text) if kind == "text/html" else text


def _is_attachment(part: structure.Part) -> bool:
    return part.disposition is not None and part.disposition[0].lower() == "attachment"
