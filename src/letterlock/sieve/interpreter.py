"""Running a parsed script against one message."""

from __future__ import annotations

from collections.abc import Callable

from letterlock.sieve.actions import Envelope, Outcome
from letterlock.sieve.errors import SieveRuntimeError
from letterlock.sieve.model import Script


def evaluate(script: Script, message: bytes, envelope: Envelope, *,
             mailbox_exists: Callable[[str], bool] | None = None,
             max_redirects: int = 5) -> Outcome:
    raise SieveRuntimeError("not implemented yet")
