"""Modified UTF-7 mailbox names (RFC 3501 5.1.3): IMAP uses them unless the client
enabled UTF8=ACCEPT or IMAP4rev2 (RFC 9051 5.1); Maildir++ folder names on disk and
Dovecot's subscriptions file are written in them too (services/mail/maildir.py)."""

from __future__ import annotations

import base64


def encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=")
                       .replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Decode; raises ValueError for a malformed name."""
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise ValueError("8-bit or control character in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise ValueError("unterminated modified base64")
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                data = base64.b64decode(b64, validate=True)
                text = data.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError("bad modified base64") from exc
            if any(0x20 <= ord(c) <= 0x7E for c in text):
                raise ValueError("printable ASCII encoded in modified base64")
            if encode(text) != "&" + chunk + "-":
                raise ValueError("non-canonical modified base64")
            out.append(text)
        i = end + 1
    return "".join(out)
