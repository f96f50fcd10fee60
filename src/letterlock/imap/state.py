"""Session states (RFC 9051 section 3) and the one place where a command is checked
against the state it needs."""

from __future__ import annotations

import enum

from letterlock.imap.parsing.commands import (
    AnyCommand,
    AuthCommand,
    Command,
    NonAuthCommand,
    SelectedCommand,
)


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ALLOWED: tuple[tuple[type[Command], frozenset[State]], ...] = (
    (AnyCommand, frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})),
    (NonAuthCommand, frozenset({State.NOT_AUTHENTICATED})),
    (AuthCommand, frozenset({State.AUTHENTICATED, State.SELECTED})),
    (SelectedCommand, frozenset({State.SELECTED})),
)


def refusal(command: Command, state: State) -> str | None:
    """Why ``command`` may not run in ``state`` (None if it may)."""
    for base, states in _ALLOWED:
        if isinstance(command, base):
            if state in states:
                return None
            if base is NonAuthCommand:
                return f"{command.name} is not allowed after authentication"
            if base is SelectedCommand and state is State.AUTHENTICATED:
                return f"{command.name} needs a selected mailbox"
            return f"{command.name} is not allowed in the {state.value} state"
    return f"{command.name} has no state rule"
