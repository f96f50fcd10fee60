"""Structured logs: where every log line of a server process is formatted and written.

One line per record on stderr (journald under systemd), as logfmt or JSON
(``log.format``), filtered by ``log.level``. A line starts with ``ts``, ``level``
and ``event`` (an event of :mod:`~letterlock.services.operations.log_events`, an
audit event's type, or ``log`` for a free-form message of some module), then the
event's fields, then the fields bound to the task (session, protocol, queue id),
then ``pid``::

    ts=2025-06-01T09:12:44.210Z level=warning event=auth:login:failed ip=203.0.113.9 \
user=~5e0b3c1d2a9f8e47@example.org proto=imap mech=PLAIN s=a1b2c33 pid=4242

Mail addresses (the fields of ``log_events.ADDRESS_FIELDS``, and anything that looks
like an address in a free-form message) are written in full or, with
``log.addresses = hashed``, as a keyed BLAKE2b hash of the address with its domain:
the same address gives the same pseudonym in every line and every process of the
server, and without the key (HOME/control/log-pseudonym.key) nobody can tell which
address it stands for, except by guessing addresses and hashing them with the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from letterlock.audit.events import AuditEvent
from letterlock.audit.keys import has_log_key
from letterlock.audit.sink import AuditLog
from letterlock.audit.store import MerkleLog, init_log
from letterlock.config import Config, LogConfig
from letterlock.errors import ConfigError
from letterlock.services.operations.log_events import (
    ADDRESS_FIELDS,
    EVENTS_LOGGER,
    TEXT_FIELDS,
    Fields,
)

PSEUDONYM_KEY_FILE = "log-pseudonym.key"
FORMATS = ("logfmt", "json")
ADDRESS_MODES = ("full", "hashed")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                logging.ERROR: "error", logging.CRITICAL: "critical"}
_UNSAFE = re.compile(r'[\s="\\\x00-\x1f\x7f]')
"""A logfmt value with any of these (or an empty one) is quoted and escaped."""
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\"',;:@]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")
_PLAUSIBLE_ADDRESS = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}@[^\s@\x00-\x1f\x7f]{1,253}")
PSEUDONYM_CACHE_MAX = 4096


def check(config: LogConfig) -> None:
    """Raise ConfigError for an option with no meaning."""
    if config.format not in FORMATS:
        raise ConfigError(f"log.format must be one of {', '.join(FORMATS)}, "
                          f"got {config.format!r}")
    if config.level not in LEVELS:
        raise ConfigError(f"log.level must be one of {', '.join(LEVELS)}, "
                          f"got {config.level!r}")
    if config.addresses not in ADDRESS_MODES:
        raise ConfigError(f"log.addresses must be one of {', '.join(ADDRESS_MODES)}, "
                          f"got {config.addresses!r}")


def load_pseudonym_key(control_dir: Path) -> bytes:
    """The key of hashed addresses, made on first use (mode 0600; every process of
    the server reads the same one)."""
    path = control_dir / PSEUDONYM_KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    control_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_bytes()
    key = os.urandom(32)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


class Pseudonyms:
    """Address -> ``~<16 hex digits>@domain`` under a key (keyed BLAKE2b of the whole
    address, lower-cased)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, address: str) -> str:
        found = self._cache.get(address)
        if found is None:
            _, at, domain = address.rpartition("@")
            digest = hashlib.blake2b(address.lower().encode("utf-8", "surrogateescape"),
                                     key=self._key, digest_size=8).hexdigest()
            found = f"~{digest}@{domain.lower()}" if at else f"~{digest}"
            if len(self._cache) >= PSEUDONYM_CACHE_MAX:
                self._cache.clear()
            self._cache[address] = found
        return found


def pseudonym(config: Config, address: str) -> str:
    """What lines about ``address`` carry with ``log.addresses = hashed`` (for
    `letterlock hash-address`)."""
    return Pseudonyms(load_pseudonym_key(config.control_dir))(address)


class _Stamps:
    """``created`` as ``2025-06-01T09:12:44.210Z``; the part down to the second is
    made once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        seconds = int(created)
        if seconds != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = seconds
        return f"{self._prefix}.{int((created - seconds) * 1000):03d}Z"


class _Memo:
    """A bounded memo of a pure function of strings (the same session ids, queue
    ids, addresses and peers recur on many lines)."""

    def __init__(self, fn: Callable[[str], str], size: int = 4096) -> None:
        self._fn = fn
        self._size = size
        self._known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        found = self._known.get(text)
        if found is None:
            if len(self._known) >= self._size:
                self._known.clear()
            found = self._known[text] = self._fn(text)
        return found


def _logfmt_text(text: str) -> str:
    return json.dumps(text) if not text or _UNSAFE.search(text) else text


class LineFormatter(logging.Formatter):
    """One record, one line: logfmt or JSON, addresses full or hashed."""

    def __init__(self, fmt: str = "logfmt",
                 pseudonyms: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._json = fmt == "json"
        self._pseudonyms = pseudonyms
        self._stamp = _Stamps()
        self._text = _Memo(_logfmt_text)
        self._addresses = _Memo(self._render_address)

    def _render_address(self, value: str) -> str:
        if value == "":
            return "<>"  # the null reverse-path of a bounce
        if not _PLAUSIBLE_ADDRESS.fullmatch(value):
            # Not an address (a client can type anything, a password too, where a
            # login name goes): never written.
            return "?"
        return self._pseudonyms(value) if self._pseudonyms is not None else value

    def _address(self, value: object) -> object:
        return self._addresses(value) if isinstance(value, str) else value

    def _value(self, value: object) -> str:
        """A logfmt value."""
        if isinstance(value, str):
            return self._text(value)
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, float):
            return f"{value:.6g}"
        if isinstance(value, int):
            return str(value)
        return self._text(str(value))

    def _scrub(self, text: str) -> str:
        if self._pseudonyms is None:
            return text
        hide = self._pseudonyms
        return _ADDRESS_LIKE.sub(lambda m: hide(m.group(0)), text)

    def _pairs(self, record: logging.LogRecord) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = [
            ("ts", self._stamp(record.created)),
            ("level", _LEVEL_NAMES.get(record.levelno, record.levelname.lower()))]
        name = getattr(record, "ll_event", None)
        if name is None:
            pairs += [("event", "log"), ("logger", record.name),
                      ("msg", self._scrub(record.getMessage()))]
            if record.exc_info:
                pairs.append(("exc", self._scrub(self.formatException(record.exc_info))))
            pairs.append(("pid", record.process))
            return pairs
        pairs.append(("event", str(name)))
        fields: dict[str, Any] = getattr(record, "ll_fields", {})
        for key, value in fields.items():
            if value is None:
                continue
            if key in ADDRESS_FIELDS:
                value = self._address(value)
            elif key in TEXT_FIELDS:
                value = self._scrub(str(value))
            pairs.append((key, value))
        bound: Fields = getattr(record, "ll_context", ())
        for key, value in bound:
            if fields.get(key) is None:
                pairs.append((key, self._address(value) if key in ADDRESS_FIELDS else value))
        pairs.append(("pid", record.process))
        return pairs

    def format(self, record: logging.LogRecord) -> str:
        pairs = self._pairs(record)
        if self._json:
            return json.dumps(dict(pairs), separators=(",", ":"), default=str)
        value = self._value
        return " ".join([f"{key}={value(item)}" for key, item in pairs])


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to a stream (stderr). Lines logged on an event loop during one turn of
    it are written together at the end of that turn: one write (and one wake-up of
    journald) for the connect, accept, store and disconnect lines of a busy moment,
    instead of one each; a line from any other thread is written at once. A write
    failure (stderr closed) never becomes an error of the request being served."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Called under the handler's lock (Handler.handle).
        try:
            line = self.format(record) + "\n"
        except Exception:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending.append(line)
            self._write()
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def _write(self) -> None:
        lines, self._pending = self._pending, []
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:
            pass

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._pending:
                self._write()

    def handleError(self, record: logging.LogRecord) -> None:
        pass


OUR_MODULES = r"letterlock(\.|$)"
"""Modules whose Python warnings (``warnings.warn``) reach the log."""


def keep_dependency_warnings_out() -> Callable[[], None]:
    """Python warnings raised in the libraries letterlock runs on (deprecations and
    the like, addressed to whoever develops against them) are dropped: an operator
    can do nothing about them. Warnings raised in letterlock's own modules are kept,
    once per place, and logged as lines like any record (``py.warnings``). A -W
    option or PYTHONWARNINGS still decides over this. Returns the function that
    undoes it."""
    guard = warnings.catch_warnings()  # saves the filters and showwarning to restore
    guard.__enter__()
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=OUR_MODULES)
    logging.captureWarnings(True)

    def undo() -> None:
        logging.captureWarnings(False)
        guard.__exit__(None, None, None)

    return undo


def configure(config: Config, stream: TextIO | None = None) -> Callable[[], None]:
    """Send every ``letterlock`` log record, and the warnings of the libraries it
    runs on, to ``stream`` (stderr) as one line each; returns the function that
    undoes it. Raises ConfigError for a bad ``log.*`` option. Python warnings of the
    libraries are not among them (:func:`keep_dependency_warnings_out`)."""
    options = config.log
    check(options)
    pseudonyms = (Pseudonyms(load_pseudonym_key(config.control_dir))
                  if options.addresses == "hashed" else None)
    handler = _LineHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LineFormatter(options.format, pseudonyms))
    level = LEVELS[options.level]
    handler.setLevel(level)
    root = logging.getLogger()
    ours = logging.getLogger("letterlock")
    saved = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries: their warnings only
    ours.setLevel(level)
    # aiosmtpd's own warnings (a client's aborted AUTH and the like) are not the
    # operator's business; its errors still show.
    aiosmtpd = logging.getLogger("mail.log")
    saved_aiosmtpd = aiosmtpd.level
    aiosmtpd.setLevel(logging.ERROR)
    keep_warnings = keep_dependency_warnings_out()

    def undo() -> None:
        keep_warnings()
        handler.flush()
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
        aiosmtpd.setLevel(saved_aiosmtpd)

    return undo


class LoggedAuditLog(AuditLog):
    """The audit log, whose every recorded event is also a log line, under the audit
    event's own name, with its index in the log as the proof reference: who
    (``actor``), on what (``account``, ``matter``), never the details (a request's
    content, a justification). An event under a non-disclosure order is logged
    without its account, as the audit log itself keeps it as a commitment."""

    async def record(self, event: AuditEvent) -> int:
        index = await super().record(event)
        self._line(event, index)
        return index

    def _line(self, event: AuditEvent, index: int) -> None:
        events = logging.getLogger(EVENTS_LOGGER)
        if not events.isEnabledFor(logging.INFO):
            return
        sealed = event.sealed_until is not None
        fields = {"index": index, "actor": event.actor,
                  "account": None if sealed else event.account, "matter": event.matter,
                  "sealed": True if sealed else None}
        events.info(event.type.value, extra={
            "ll_event": event.type, "ll_fields": fields, "ll_context": ()})


def open_logged_audit(directory: Path) -> LoggedAuditLog:
    """The application's audit log (as ``audit.log.open_sink``), logging each event."""
    if not has_log_key(directory):
        init_log(directory)
    return LoggedAuditLog(MerkleLog(directory))
