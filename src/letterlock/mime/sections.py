"""Body sections (RFC 9051 6.4.5): the octets a section specification designates,
from the raw message and its part tree. Pure; None means "no such section"."""

from __future__ import annotations

from collections.abc import Sequence

from letterlock.mime.headers import split_fields
from letterlock.mime.structure import Part, decode_body, find_part, message_of


def header_fields(header: bytes, names: Sequence[str], exclude: bool) -> bytes:
    """The fields of ``header`` named (or, with ``exclude``, not named) in ``names``,
    as written, followed by the blank line."""
    wanted = {n.lower() for n in names}
    kept = [f.raw for f in split_fields(header) if (f.key in wanted) != exclude]
    out = b"".join(kept)
    if out and not out.endswith(b"\n"):
        out += b"\r\n"
    return out + b"\r\n"


def header_only(header: bytes, text: str | None, fields: Sequence[str]) -> bytes:
    """HEADER / HEADER.FIELDS / HEADER.FIELDS.NOT of a message given just its header."""
    if text == "HEADER.FIELDS":
        return header_fields(header, fields, exclude=False)
    if text == "HEADER.FIELDS.NOT":
        return header_fields(header, fields, exclude=True)
    return header


def section(raw: bytes, root: Part, path: tuple[int, ...], text: str | None,
            fields: Sequence[str] = ()) -> bytes | None:
    if text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        msg = message_of(root, path)
        if msg is None:
            return None
        if text == "TEXT":
            return raw[msg.body_start : msg.end]
        return header_only(raw[msg.header_start : msg.body_start], text, fields)
    if not path:
        return raw
    part = find_part(root, path)
    if part is None:
        return None
    if text == "MIME":
        return raw[part.header_start : part.body_start]
    return raw[part.body_start : part.end]


def binary_section(raw: bytes, root: Part, path: tuple[int, ...]) -> bytes | bool | None:
    """Decoded content of a part (BINARY, RFC 3516): bytes, None for no such part, or
    False when its Content-Transfer-Encoding is unknown."""
    if not path:
        return raw
    part = find_part(root, path)
    if part is None:
        return None
    if part.is_multipart or part.is_message:
        return raw[part.body_start : part.end]
    decoded = decode_body(raw[part.body_start : part.end], part.encoding)
    return False if decoded is None else decoded
