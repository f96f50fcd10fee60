"""The outcome of one command: a tagged status with an optional response code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: str
    """OK, NO or BAD."""
    code: str | None
    text: str

    def encode(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{self.text}\r\n".encode("utf-8", "replace")


def ok(text: str, code: str | None = None) -> Reply:
    return Reply("OK", code, text)


def no(text: str, code: str | None = None) -> Reply:
    return Reply("NO", code, text)


def bad(text: str, code: str | None = None) -> Reply:
    return Reply("BAD", code, text)
