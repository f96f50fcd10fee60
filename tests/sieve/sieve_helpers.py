"""Building messages and running scripts for the Sieve tests."""

from __future__ import annotations

from letterlock.sieve import Envelope, Outcome, evaluate, parse

ME = "me@example.com"


def message(headers: dict[str, str] | list[tuple[str, str]] | None = None,
            body: str = "Hello\r\n", *, extra: bytes = b"") -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if not any(k.lower() == "to" for k, _ in items):
        items.append(("To", ME))
    if not any(k.lower() == "from" for k, _ in items):
        items.append(("From", "alice@example.org"))
    head = "".join(f"{k}: {v}\r\n" for k, v in items)
    return head.encode("utf-8") + extra + b"\r\n" + body.encode("utf-8")


def run(script: str, msg: bytes | None = None, *, sender: str = "alice@example.org",
        recipient: str = ME, **kwargs: object) -> Outcome:
    return evaluate(parse(script), message() if msg is None else msg,
                    Envelope(sender, recipient), **kwargs)  # type: ignore[arg-type]
