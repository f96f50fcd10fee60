"""The Sieve mail-filtering language (RFC 5228) and its extensions: a pure,
synchronous leaf library. ``parse`` turns a script into a validated ``Script``;
``evaluate`` runs it against one message and its envelope and returns the actions
to take. Storage, ManageSieve and delivery live elsewhere and call these."""

from __future__ import annotations

from letterlock.sieve.actions import (
                                      Action,
                                      Discard,
                                      Envelope,
                                      FileInto,
                                      Keep,
                                      Outcome,
                                      Redirect,
                                      Reject,
                                      Vacation,
)
from letterlock.sieve.errors import SieveError, SieveRuntimeError, SieveSyntaxError
from letterlock.sieve.interpreter import evaluate
from letterlock.sieve.model import EXTENSIONS, Disclosure, Script, parse

__all__ = [
    "EXTENSIONS", "Action", "Discard", "Disclosure", "Envelope", "FileInto", "Keep",
    "Outcome", "Redirect", "Reject", "Script", "SieveError", "SieveRuntimeError",
    "SieveSyntaxError", "Vacation", "evaluate", "parse",
]
