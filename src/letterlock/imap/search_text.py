"""What SEARCH compares a header field with (RFC 9051 6.4.4: a case-insensitive
substring of the field's value): the value unfolded, RFC 2047 words decoded and
case-folded, and for address fields also each address as ``name <user@host>`` (so
comments and odd spacing do not hide an address, as established servers do).

Computed once per message, when its digest is made (imap/views.py), and kept sealed
in the digest: a SEARCH then compares strings instead of parsing headers again.
"""

from __future__ import annotations

from letterlock.mime.headers import decode_header_text, decode_words, parse_addresses, split_fields

ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})
_FIELD_END, _NAME_END = "\x1e", "\x1f"


def fold(text: str) -> str:
    return text.casefold()


def folded_value(key: str, value: bytes) -> str:
    text = decode_header_text(value)
    if key in ADDRESS_FIELDS:
        forms = [text]
        for a in parse_addresses(value):
            if a.mailbox and a.host:
                forms.append(f"{decode_words(a.name or '')} <{a.mailbox}@{a.host}>")
        text = "\n".join(forms)
    return fold(text)


def encode(header: bytes) -> bytes:
    """Every field of ``header`` as (lower-case name, folded value), serialized."""
    return "".join(f"{f.key}{_NAME_END}{folded_value(f.key, f.value)}{_FIELD_END}"
                   for f in split_fields(header)).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> dict[str, list[str]]:
    """name -> folded values, in header order."""
    out: dict[str, list[str]] = {}
    for item in data.decode("utf-8", "surrogatepass").split(_FIELD_END)[:-1]:
        name, _, value = item.partition(_NAME_END)
        out.setdefault(name, []).append(value)
    return out
