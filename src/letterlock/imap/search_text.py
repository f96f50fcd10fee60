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


def _clean(text: str) -> str:
    # The separators cannot occur inside a value (a crafted header must not make up
    # fields); a value holding one is compared as if it held a space there.
    return text.replace(_FIELD_END, " ").replace(_NAME_END, " ")


def encode(header: bytes) -> bytes:
    """Every field of ``header`` as (lower-case name, folded value), serialized:
    ``name \\x1f value \\x1e`` each, UTF-8."""
    return "".join(f"{f.key}{_NAME_END}{_clean(folded_value(f.key, f.value))}{_FIELD_END}"
                   for f in split_fields(header)).encode("utf-8", "surrogatepass")


def needle(text: str) -> bytes:
    """A search string as :func:`field_values` are compared with (a substring of
    UTF-8 text is a substring of its encoding, so no value need be decoded)."""
    return _clean(fold(text)).encode("utf-8", "surrogatepass")


def field_values(data: bytes, name: str) -> list[bytes] | None:
    """The encoded folded values of field ``name`` (lower case) in :func:`encode`'s
    output, None if there is no such field."""
    key = name.encode("utf-8", "surrogatepass") + b"\x1f"
    out: list[bytes] = []
    pos = data.find(key)
    while pos >= 0:
        if pos == 0 or data[pos - 1] == 0x1E:
            start = pos + len(key)
            end = data.find(b"\x1e", start)
            out.append(data[start:end])
            pos = end
        else:
            pos += 1
        pos = data.find(key, pos)
    return out or None


def all_values(data: bytes) -> list[bytes]:
    """Every field's encoded folded value (for TEXT: values, not field names)."""
    return [item.partition(b"\x1f")[2] for item in data.split(b"\x1e")[:-1]]
