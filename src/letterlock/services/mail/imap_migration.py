"""IMAP-to-IMAP migration of one account (what imapsync is used for): every folder,
with each message's flags, keywords and internal date, byte for byte, and the
subscriptions, from a running server to another (Dovecot to letterlock, or back).

It is an IMAP client on both sides (Python's imaplib): nothing of letterlock's
storage is touched, so it works between any two IMAP4rev1 servers, over implicit TLS,
STARTTLS or plain TCP.

Resuming: a JSON state file remembers, per source folder, its UIDVALIDITY and the
highest UID copied; it is rewritten (atomically) after every message. A run skips what
the state says is done and copies only newer UIDs, so a second run copies only new
mail, and a run cut short goes on where it stopped (a message whose copy was acknowledged
but not yet recorded when the run died is copied once more). If the source folder's
UIDVALIDITY changed, its UIDs mean other messages: the folder is copied again from the
start. Flag changes on messages already copied are not carried over.

Folder names travel in modified UTF-7 as both servers speak it; only the hierarchy
separator is translated (Dovecot's Maildir++ uses ``.``, letterlock ``/``).
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from letterlock.errors import AuthenticationFailed, InvalidInput, Refused
from letterlock.services.operations.log_events import LogEvent, event

Security = Literal["tls", "starttls", "plain"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "imaps": ("tls", 993), "imap+starttls": ("starttls", 143), "imap": ("plain", 143)}
FETCH_BATCH = 20
FETCH_BYTES = 32 * 1024 * 1024
STATE_VERSION = 1
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_DATE = re.compile(rb'\bINTERNALDATE ("[^"]+")')
_LITERAL_END = re.compile(rb"\{\d+\}$")


@dataclass(frozen=True)
class Endpoint:
    """One side: ``imaps://USER@HOST[:PORT]`` (implicit TLS), ``imap+starttls://``
    or ``imap://`` (plaintext: loopback or a trusted network only)."""

    security: Security
    host: str
    port: int
    user: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, url: str, password: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise InvalidInput(f"{url!r}: the scheme must be imaps://, imap+starttls:// "
                               f"or imap://")
        if not parts.hostname or not parts.username:
            raise InvalidInput(f"{url!r}: expected SCHEME://USER@HOST[:PORT] (an @ in "
                               f"the user name is written %40)")
        security, default_port = SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise InvalidInput(f"{url!r}: bad port") from None
        return cls(security, parts.hostname, port, unquote(parts.username), password)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Folder:
    name: bytes
    """As the server sends it (modified UTF-7)."""
    delimiter: bytes | None
    selectable: bool


@dataclass
class Result:
    folders: int = 0
    copied: int = 0
    skipped: int = 0
    per_folder: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Source folder -> (copied, skipped)."""


# -- the wire ---------------------------------------------------------------------------

def quote(name: bytes) -> str:
    """``name`` as an IMAP quoted string (imaplib sends arguments as given)."""
    text = name.decode("ascii", "strict")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_string(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """An astring or NIL at ``pos`` (after spaces) -> (value, position after it)."""
    while pos < len(data) and data[pos : pos + 1] == b" ":
        pos += 1
    if data[pos : pos + 1] == b'"':
        out = bytearray()
        pos += 1
        while pos < len(data) and data[pos : pos + 1] != b'"':
            if data[pos : pos + 1] == b"\\":
                pos += 1
            out += data[pos : pos + 1]
            pos += 1
        return bytes(out), pos + 1
    end = data.find(b" ", pos)
    end = len(data) if end < 0 else end
    word = data[pos:end]
    return (None if word.upper() == b"NIL" else word), end


def parse_list(items: list[Any]) -> list[Folder]:
    """LIST/LSUB response lines as imaplib returns them (a line, or a (line, literal)
    pair when the name came as a literal)."""
    out = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, tuple):
            line, literal = item[0], item[1]
        else:
            line, literal = item, None
        close = line.find(b")")
        if not line.startswith(b"(") or close < 0:
            raise Refused(f"unexpected LIST line from the server: {line[:80]!r}")
        flags = line[1:close].lower().split()
        delimiter, pos = _read_string(line, close + 1)
        if literal is not None:
            name = literal
        else:
            value, _pos = _read_string(line, pos)
            name = value or b""
        if name.upper() == b"INBOX":
            name = b"INBOX"
        out.append(Folder(name, delimiter, b"\\noselect" not in flags
                          and b"\\nonexistent" not in flags))
    return out


def _check(what: str, where: str, reply: tuple[str, list[Any]]) -> list[Any]:
    status, data = reply
    if status != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
        raise Refused(f"{where}: {what} failed: {text[:200]}")
    return data


def connect(endpoint: Endpoint, context: ssl.SSLContext, timeout: float = 60.0
            ) -> imaplib.IMAP4:
    """A logged-in connection; AuthenticationFailed for a wrong password, Refused when
    the server cannot be reached or offers no way to log in."""
    try:
        client: imaplib.IMAP4
        if endpoint.security == "tls":
            client = imaplib.IMAP4_SSL(endpoint.host, endpoint.port, ssl_context=context,
                                       timeout=timeout)
        else:
            client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=timeout)
            if endpoint.security == "starttls":
                client.starttls(context)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise Refused(f"cannot connect to {endpoint.where} ({endpoint.security}): "
                      f"{exc}") from None
    try:
        client.login(endpoint.user, endpoint.password)
    except imaplib.IMAP4.error as exc:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise AuthenticationFailed(f"{endpoint.where}: login as {endpoint.user} failed: "
                                   f"{exc}") from None
    return client


def _fetched(data: list[Any]) -> Iterator[tuple[int, str, str, bytes]]:
    """(uid, flags, quoted internal date, message) from a UID FETCH response."""
    i = 0
    while i < len(data):
        item = data[i]
        i += 1
        if not isinstance(item, tuple) or not _LITERAL_END.search(item[0]):
            continue
        meta = item[0]
        if i < len(data) and isinstance(data[i], bytes):
            meta += data[i]  # items the server sent after the literal
            i += 1
        uid, flags, date = _UID.search(meta), _FLAGS.search(meta), _DATE.search(meta)
        if uid is None or flags is None or date is None:
            raise Refused(f"unexpected FETCH response: {meta[:120]!r}")
        kept = [f for f in flags.group(1).decode("ascii", "replace").split()
                if f.lower() != "\\recent"]
        yield int(uid.group(1)), " ".join(kept), date.group(1).decode("ascii"), item[1]


# -- state ------------------------------------------------------------------------------

class State:
    """Per source folder: UIDVALIDITY and the highest UID copied (the state file)."""

    def __init__(self, path: Path, source: Endpoint, target: Endpoint) -> None:
        self.path = path
        self.pair = {"source": f"{source.user}@{source.where}",
                     "target": f"{target.user}@{target.where}"}
        self.folders: dict[str, dict[str, int]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text("utf-8"))
                ok = data.get("version") == STATE_VERSION and isinstance(
                    data.get("folders"), dict)
            except (ValueError, UnicodeDecodeError, AttributeError):
                ok = False
            if not ok:
                raise InvalidInput(f"{path} is not a migration state file")
            if {k: data.get(k) for k in self.pair} != self.pair:
                raise InvalidInput(f"{path} is the state of another migration "
                                   f"({data.get('source')} -> {data.get('target')})")
            self.folders = data["folders"]

    def last_uid(self, folder: str, uidvalidity: int) -> int:
        known = self.folders.get(folder)
        if known is None or known.get("uidvalidity") != uidvalidity:
            return 0
        return int(known.get("last_uid", 0))

    def record(self, folder: str, uidvalidity: int, uid: int, *, sync: bool = False) -> None:
        self.folders[folder] = {"uidvalidity": uidvalidity, "last_uid": uid}
        tmp = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps({"version": STATE_VERSION, **self.pair, "folders": self.folders},
                          indent=1, sort_keys=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.path)


# -- the migration ----------------------------------------------------------------------

def target_name(folder: Folder, target_delimiter: bytes | None) -> bytes:
    if folder.name == b"INBOX" or folder.delimiter is None or target_delimiter is None \
            or folder.delimiter == target_delimiter:
        return folder.name
    parts = folder.name.split(folder.delimiter)
    if any(target_delimiter in p for p in parts):
        raise Refused(f"folder {folder.name.decode('ascii', 'replace')!r} holds "
                      f"{target_delimiter.decode()!r}, the target's hierarchy separator")
    return target_delimiter.join(parts)


def _uidvalidity(client: imaplib.IMAP4) -> int:
    _typ, values = client.response("UIDVALIDITY")
    if not values or values[0] is None:
        raise Refused("the source sent no UIDVALIDITY when a folder was opened")
    return int(values[0])


def _pending(src: imaplib.IMAP4, last: int, where: str) -> list[tuple[int, int]]:
    """(uid, size) of the messages after UID ``last``, ascending."""
    data = _check("UID FETCH", where, src.uid("FETCH", f"{last + 1}:*", "(UID RFC822.SIZE)"))
    out = []
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        # "N:*" names the last message even when its UID is below N.
        if uid is not None and size is not None and int(uid.group(1)) > last:
            out.append((int(uid.group(1)), int(size.group(1))))
    return sorted(set(out))


def _batches(pending: list[tuple[int, int]]) -> Iterator[list[int]]:
    """UIDs in groups of at most FETCH_BATCH messages and FETCH_BYTES (a larger
    message alone), so memory stays bounded whatever the mailbox holds."""
    batch: list[int] = []
    size = 0
    for uid, octets in pending:
        if batch and (len(batch) == FETCH_BATCH or size + octets > FETCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += octets
    if batch:
        yield batch


def copy_folder(src: imaplib.IMAP4, dst: imaplib.IMAP4, folder: Folder, target: bytes,
                state: State, where: tuple[str, str]) -> tuple[int, int]:
    """Copy the messages of ``folder`` not yet copied; returns (copied, skipped).
    ``where``: the source's and the target's host:port, for error messages."""
    key = folder.name.decode("ascii", "replace")
    exists = _check("EXAMINE", where[0], src.select(quote(folder.name), readonly=True))
    validity = _uidvalidity(src)
    last = state.last_uid(key, validity)
    # An empty folder is not asked for "N:*" (some servers refuse that set then).
    pending = _pending(src, last, where[0]) if exists and exists[0] not in (b"0", None) \
        else []
    copied = 0
    for batch in _batches(pending):
        data = _check("UID FETCH", where[0], src.uid(
            "FETCH", ",".join(map(str, batch)), "(UID FLAGS INTERNALDATE BODY.PEEK[])"))
        for uid, flags, date, raw in sorted(_fetched(data)):
            _check("APPEND", where[1], dst.append(quote(target), f"({flags})", date, raw))
            copied += 1
            state.record(key, validity, uid)
    if pending:
        state.record(key, validity, pending[-1][0], sync=True)
    elif key not in state.folders:
        state.record(key, validity, last, sync=True)
    return copied, _count_before(src, last, where[0])


def _count_before(src: imaplib.IMAP4, last: int, where: str) -> int:
    if last == 0:
        return 0
    found = _check("UID SEARCH", where, src.uid("SEARCH", "UID", f"1:{last}"))
    return len(b" ".join(found).split())


def migrate(source: Endpoint, target: Endpoint, state_path: Path,
            context: ssl.SSLContext) -> Result:
    """Copy everything of ``source`` not yet copied to ``target``; see the module."""
    started = time.monotonic()
    event(LogEvent.MIGRATION_STARTED, source=source.where, target=target.where,
          user=source.user)
    try:
        result = _migrate(source, target, state_path, context)
    except Exception as exc:
        event(LogEvent.MIGRATION_FAILED, reason=str(exc)[:200])
        raise
    event(LogEvent.MIGRATION_FINISHED, folders=result.folders, copied=result.copied,
          skipped=result.skipped, seconds=round(time.monotonic() - started, 3))
    return result


def _migrate(source: Endpoint, target: Endpoint, state_path: Path,
             context: ssl.SSLContext) -> Result:
    state = State(state_path, source, target)
    result = Result()
    src = connect(source, context)
    try:
        dst = connect(target, context)
        try:
            folders = parse_list(_check("LIST", source.where, src.list('""', '"*"')))
            subscribed = parse_list(_check("LSUB", source.where, src.lsub('""', '"*"')))
            existing = parse_list(_check("LIST", target.where, dst.list('""', '"*"')))
            delimiter = next((f.delimiter for f in existing if f.delimiter), None)
            have = {f.name for f in existing} | {b"INBOX"}
            folders.sort(key=lambda f: (f.name != b"INBOX", f.name))
            for folder in folders:
                if not folder.selectable:
                    continue  # a level of the hierarchy only: made with its children
                name = target_name(folder, delimiter)
                if name not in have:
                    _check("CREATE", target.where, dst.create(quote(name)))
                    have.add(name)
                copied, skipped = copy_folder(src, dst, folder, name, state,
                                              (source.where, target.where))
                result.folders += 1
                result.copied += copied
                result.skipped += skipped
                result.per_folder[folder.name.decode("ascii", "replace")] = (copied, skipped)
                event(LogEvent.MIGRATION_FOLDER, copied=copied, skipped=skipped)
            for folder in subscribed:
                _check("SUBSCRIBE", target.where,
                       dst.subscribe(quote(target_name(folder, delimiter))))
        finally:
            with contextlib.suppress(Exception):
                dst.logout()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise Refused(f"the IMAP conversation failed: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            src.logout()
    return result
