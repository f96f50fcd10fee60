"""The Sieve engine's errors::

    LetterlockError
    └── SieveError                  any problem with a Sieve script
        ├── SieveSyntaxError        the script does not parse or validate (has .line)
        └── SieveRuntimeError       running the script failed; the caller keeps the mail
"""

from __future__ import annotations

from letterlock.errors import LetterlockError


class SieveError(LetterlockError):
    """Base of the Sieve engine's errors."""


class SieveSyntaxError(SieveError):
    """The script is not valid Sieve; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class SieveRuntimeError(SieveError):
    """Running a script failed (a limit was hit); the message is kept."""
