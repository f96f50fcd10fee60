"""What every command shares: the HOME option, configuration loading, running a
coroutine against the application, and turning domain errors into one-line messages
with a non-zero exit status."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from letterlock import config as config_mod
from letterlock.app import App, open_app
from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ConfigError,
    InvalidInput,
    LetterlockError,
    NotFound,
    NotInitialised,
    Refused,
)

T = TypeVar("T")

EXIT_CODES: tuple[tuple[type[LetterlockError], int], ...] = (
    (InvalidInput, 2),
    (NotInitialised, 3),
    (NotFound, 4),
    (AlreadyExists, 5),
    (AuthenticationFailed, 6),
    (Refused, 7),
)


@dataclass(frozen=True)
class CliContext:
    home: Path
    overrides: dict[str, dict[str, Any]]

    def config(self) -> config_mod.Config:
        return config_mod.load(self.home, overrides=self.overrides)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"letterlock: {message}", err=True)
    sys.exit(code)


def warn_unknown_env() -> None:
    """One line on stderr for each LETTERLOCK_* variable that nothing reads (a
    misspelt override), naming the nearest one that is read."""
    for name, near in config_mod.unknown_env(os.environ):
        hint = f"did you mean {near}?" if near else "(`letterlock config` lists them)"
        sep = ";" if near else ""
        click.echo(f"letterlock: warning: {name} is not a letterlock setting and is "
                   f"ignored{sep} {hint}", err=True)


def load_config(ctx: CliContext) -> config_mod.Config:
    """The HOME's configuration; an unreadable one ends the command with status 2."""
    try:
        return ctx.config()
    except ConfigError as exc:
        fail(str(exc), 2)


def exit_code_for(exc: LetterlockError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; a domain error becomes a one-line message and exit status."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except LetterlockError as exc:
        fail(str(exc) or type(exc).__name__, exit_code_for(exc))


def run_with_app(config: config_mod.Config, fn: Callable[[App], Awaitable[T]]) -> T:
    """Open the application on ``config``, run ``fn(app)`` and close it again; a
    domain error becomes a one-line message and exit status (see :func:`run`)."""
    async def go() -> T:
        async with open_app(config) as app:
            return await fn(app)

    return run(go)


def read_stdin_lines(count: int, what: str) -> list[str]:
    """``count`` lines from standard input (passwords and codes are never arguments,
    so they do not show in the process list or shell history)."""
    lines = []
    for i in range(count):
        line = sys.stdin.readline()
        if not line:
            fail(f"expected {what} on standard input (line {i + 1} missing)", 2)
        lines.append(line.rstrip("\r\n"))
    return lines


def ask_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin or not sys.stdin.isatty():
        return read_stdin_lines(1, "the password")[0]
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=False))


pass_ctx = click.make_pass_decorator(CliContext)


def console() -> Console:
    """A Rich console for tables. Piped output gets a wide fixed width instead of
    Rich's 80 columns, so ids and addresses are never cut or wrapped."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def default_home() -> Path:
    return Path(os.environ.get("LETTERLOCK_HOME", "./var"))


LISTENER_OPTIONS: tuple[tuple[str, str, str, type, str], ...] = (
    # (flag, section, option, type, help): the listeners of `serve`, also taken by
    # `init`, which keeps them in the configuration file.
    ("--bind", "server", "bind", str, "Address to listen on (default 127.0.0.1)."),
    ("--smtp-port", "smtp", "port", int, "SMTP MX port (default 2525)."),
    ("--submission-port", "smtp", "submission_port", int,
     "SMTP submission port (default 2587)."),
    ("--imap-port", "imap", "port", int, "IMAP port (default 1143)."),
    ("--imaps-port", "imap", "tls_port", int, "IMAP implicit TLS port (1993)."),
    ("--http-port", "http", "port", int, "HTTP port (default 8080)."),
    ("--lmtp-port", "smtp", "lmtp_port", int,
     "LMTP port for a front MTA (default 0: none)."),
    ("--lmtp-socket", "smtp", "lmtp_socket", str,
     "LMTP Unix socket path, relative to HOME or absolute; '' for none "
     "(default HOME/lmtp.sock)."),
)

Command = Callable[..., Any]


def listener_options(command: Command) -> Command:
    """Add the listener options to ``command``, which receives the ones given as
    ``listeners``: (section, option, value) triples."""
    params = {flag: f"listener_{section}_{name}" for flag, section, name, _t, _h
              in LISTENER_OPTIONS}

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = []
        for flag, section, name, _type, _help in LISTENER_OPTIONS:
            value = kwargs.pop(params[flag])
            if value is not None:
                given.append((section, name, value))
        return command(*args, listeners=tuple(given), **kwargs)

    for flag, _section, _name, kind, text in reversed(LISTENER_OPTIONS):
        port_type = click.IntRange(0, 65535) if kind is int else str
        wrapper = click.option(flag, params[flag], type=port_type, default=None,
                               help=text)(wrapper)
    return wrapper
