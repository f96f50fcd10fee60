"""One mbox file per folder, with each message's flags in the header fields mutt and
Dovecot keep them in, so either reads them.

Layout (mailbox ``Work/Projects``)::

    ROOT/INBOX.mbox
    ROOT/Work.mbox
    ROOT/Work/Projects.mbox           levels are directories
    ROOT/Entw&APw-rfe.mbox            names in modified UTF-7, as Dovecot writes them
    ROOT/subscriptions                one subscribed name a line (UTF-8, ``/``)

Every folder is a file ending in ``.mbox`` (a folder with both mail and subfolders
fits, unlike a bare file and a directory of one name); an empty folder is an empty
file. Messages are framed as :func:`transfer.mbox_entry` frames them (mboxrd quoting,
the internal date on the ``From `` line) with, at the end of the header section:

- ``Status:`` ``R`` for \\Seen, and ``O`` (no longer new);
- ``X-Status:`` ``A`` \\Answered, ``F`` \\Flagged, ``T`` \\Draft, ``D`` \\Deleted;
- ``X-Keywords:`` the keywords, separated by spaces.

Dovecot's own mbox layout (files without a suffix, ``.subscriptions`` in its format)
is read too. Reading takes these fields out again (and Dovecot's ``X-UID``, ``X-IMAP``,
``X-IMAPbase``, ``Content-Length``; a message with ``X-IMAP`` is Dovecot's folder
data, not mail), so a message comes back as it went out. A message that carried one
of these fields itself loses it: mbox has no other place for flags. Reading accepts
any mbox file in the tree, with or without the ``.mbox`` suffix.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from letterlock.errors import InvalidInput
from letterlock.mime import utf7
from letterlock.services.mail.mailbox_folders import HIERARCHY
from letterlock.services.mail.maildir import (
    is_keyword,
    make_private_dir,
    read_subscriptions,
    write_private,
)
from letterlock.services.mail.transfer import SourceMessage, mbox_date, mbox_entry, to_crlf

SUFFIX = ".mbox"
SUBSCRIPTIONS = "subscriptions"
DOVECOT_SUBSCRIPTIONS = ".subscriptions"
_X_STATUS = (("A", "\\Answered"), ("F", "\\Flagged"), ("T", "\\Draft"), ("D", "\\Deleted"))
_META_FIELDS = (b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imap", b"x-imapbase",
                b"content-length")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def flag_fields(flags: frozenset[str]) -> bytes:
    """The Status/X-Status/X-Keywords lines (LF) for ``flags``."""
    status = ("R" if "\\Seen" in flags else "") + "O"
    x_status = "".join(letter for letter, flag in _X_STATUS if flag in flags)
    keywords = " ".join(sorted(f for f in flags if not f.startswith("\\")))
    out = f"Status: {status}\n"
    if x_status:
        out += f"X-Status: {x_status}\n"
    if keywords:
        out += f"X-Keywords: {keywords}\n"
    return out.encode("ascii")


def with_flag_fields(raw: bytes, flags: frozenset[str]) -> bytes:
    """``raw`` (CRLF) with the flag fields added at the end of its header section."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    fields = flag_fields(flags).replace(b"\n", b"\r\n")
    if not sep:
        # A message without a body: the header section runs to the end.
        return (head if head.endswith(b"\r\n") or not head else head + b"\r\n") + fields
    return head + b"\r\n" + fields + b"\r\n" + body


def split_flag_fields(raw: bytes, where: str) -> tuple[bytes, tuple[str, ...], bool]:
    """(message without the flag fields, its flags, whether it is folder data)."""
    crlf = to_crlf(raw)
    head, sep, body = crlf.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    flags: list[str] = []
    folder_data = False
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        match = _FIELD_NAME.match(line)
        field = match.group(1).lower() if match else b""
        skipping = field in _META_FIELDS
        if not skipping:
            kept.append(line)
            continue
        value = line[match.end():].decode("ascii", "replace").strip() if match else ""
        if field == b"status" and "R" in value:
            flags.append("\\Seen")
        elif field == b"x-status":
            flags.extend(flag for letter, flag in _X_STATUS if letter in value)
        elif field == b"x-keywords":
            for word in value.replace(",", " ").split():
                if not is_keyword(word):
                    raise InvalidInput(f"{where}: X-Keywords holds {word!r}, which is "
                                       f"not an IMAP keyword")
                flags.append(word)
        elif field == b"x-imap":
            folder_data = True
    rest = b"\r\n\r\n" + body if sep else b""
    return b"\r\n".join(kept) + rest, tuple(flags), folder_data


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"^Content-Length:[ \t]*(\d{1,12})[ \t]*\r?$",
                             re.MULTILINE | re.IGNORECASE)
_NEXT_FROM = re.compile(rb"\n(?=From )")
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")


def split_mbox(data: bytes | mmap.mmap) -> Iterator[tuple[bytes, bytes]]:
    """(``From `` line, message) for each message of an mbox held in ``data``.

    A message whose ``Content-Length:`` field measures its body exactly up to the next
    ``From `` line (or the end) is taken as it is: Dovecot writes mbox files that way
    and quotes no ``From `` line. Any other is cut at the next line starting with
    ``From `` and its ``>From`` lines lose one ``>`` (mboxrd, as we write them)."""
    pos, end = 0, len(data)
    while pos < end:
        eol = data.find(b"\n", pos)
        eol = end if eol < 0 else eol
        from_line, start = bytes(data[pos:eol]).rstrip(b"\r"), min(eol + 1, end)
        # No header field starts with "From ": the header section ends by then.
        following = _NEXT_FROM.search(data, start)
        limit = following.start() + 1 if following else end
        blank = _BLANK_LINE.search(data, max(start - 1, 0), limit)
        body_start = blank.end() if blank else limit
        length = _CONTENT_LENGTH.search(data, start, blank.start() if blank else limit)
        if length is not None:
            stop = body_start + int(length.group(1))
            after = _after_body(data, stop) if stop <= end else None
            if after is not None:
                yield from_line, bytes(data[start:stop])
                pos = after
                continue
        found = _NEXT_FROM.search(data, max(body_start - 1, start))
        stop = found.end() if found else end
        raw = bytes(data[start:stop])
        # The blank line before the next separator belongs to the format.
        if raw.endswith(b"\r\n\r\n"):
            raw = raw[:-2]
        elif raw.endswith(b"\n\n"):
            raw = raw[:-1]
        yield from_line, _QUOTED_FROM.sub(rb"\1", raw)
        pos = stop


def _after_body(data: bytes | mmap.mmap, stop: int) -> int | None:
    """Where the next message starts after a Content-Length body ending at ``stop``
    (the end of the file, or its ``From `` line after line ends); None if something
    else follows, so the length is wrong."""
    pos = stop
    while pos < len(data) and data[pos : pos + 1] in (b"\r", b"\n"):
        pos += 1
    if pos >= len(data) or data[pos : pos + 5] == b"From ":
        return pos
    return None


def read_mbox_file(path: Path) -> Iterator[SourceMessage]:
    """Messages of the mbox file ``path`` with the flags their header fields carry
    (folder data left out). Raises InvalidInput if it is not an mbox file."""
    with open(path, "rb") as fh:
        if not fh.read(1):
            return
        fh.seek(0)
        if fh.read(5) != b"From ":
            raise InvalidInput(f"{path} is not an mbox file: it does not start with a "
                               f"'From ' line")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for number, (from_line, raw) in enumerate(split_mbox(data), 1):
                origin = f"message {number}"
                body, flags, folder_data = split_flag_fields(raw, f"{path} ({origin})")
                if not folder_data:
                    yield SourceMessage(body, flags, mbox_date(from_line), origin)


# -- writing ----------------------------------------------------------------------------

def folder_file(root: Path, name: str) -> Path:
    """``root/Work/Projects.mbox``; levels in modified UTF-7, as Dovecot names them."""
    parts = [utf7.encode(p) for p in name.split(HIERARCHY)]
    return root.joinpath(*parts[:-1], parts[-1] + SUFFIX)


def _level_name(part: str) -> str:
    """A file or directory name as a level of a folder name: modified UTF-7 (ours and
    Dovecot's) decoded; anything else (UTF-8 names of a hand-made tree) as it is."""
    try:
        return utf7.decode(part)
    except ValueError:
        return part


class MboxFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".part")
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 (closed in close())
        self._tmp.chmod(0o600)

    def add(self, raw: bytes, flags: frozenset[str], internaldate: datetime) -> None:
        self._fh.write(mbox_entry(with_flag_fields(raw, flags), internaldate))

    def close(self) -> None:
        self._fh.close()
        self._tmp.replace(self.path)


class MboxTreeWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        make_private_dir(root)

    def folder(self, name: str) -> MboxFolder:
        path = folder_file(self.root, name)
        for parent in reversed(path.relative_to(self.root).parents):
            make_private_dir(self.root / parent)
        return MboxFolder(path)

    def write_subscriptions(self, names: Sequence[str]) -> None:
        write_private(self.root / SUBSCRIPTIONS,
                      "".join(n + "\n" for n in names).encode("utf-8"))


# -- reading ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MboxSource:
    name: str
    path: Path

    def messages(self) -> Iterator[SourceMessage]:
        for msg in read_mbox_file(self.path):
            yield replace(msg, origin=f"{self.path.name}, {msg.origin}")


def _mail_files(root: Path) -> Iterator[Path]:
    """The files of the tree that may be folders: not hidden (Dovecot's ``.imap``
    index, ``.subscriptions``), not the subscriptions file or a partial export."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts) \
                and rel.as_posix() != SUBSCRIPTIONS and not path.name.endswith(".part"):
            yield path


def is_mbox_tree(root: Path) -> bool:
    """Whether ``root`` holds an ``.mbox`` file or any file starting as an mbox."""
    for path in _mail_files(root):
        if path.suffix == SUFFIX:
            return True
        with open(path, "rb") as fh:
            if fh.read(5) == b"From ":
                return True
    return False


def read_tree(root: Path) -> tuple[list[MboxSource], list[str] | None]:
    """Every mbox file under ``root`` as a folder (name: its path, ``.mbox`` left
    out; ``inbox`` in any case is INBOX), INBOX first; and the subscriptions."""
    folders = []
    for path in _mail_files(root):
        rel = path.relative_to(root)
        with open(path, "rb") as fh:
            head = fh.read(5)
        if head and head != b"From ":
            raise InvalidInput(f"{path} is not an mbox file: it does not start with a "
                               f"'From ' line")
        parts = list(rel.parts)
        if parts[-1].endswith(SUFFIX):
            parts[-1] = parts[-1][: -len(SUFFIX)]
        name = HIERARCHY.join(_level_name(p) for p in parts)
        if name.upper() == "INBOX":
            name = "INBOX"
        folders.append(MboxSource(name, path))
    folders.sort(key=lambda f: (f.name != "INBOX", f.name))
    subs = root / SUBSCRIPTIONS
    names = None
    if not subs.is_file() and (root / DOVECOT_SUBSCRIPTIONS).is_file():
        return folders, read_subscriptions(root / DOVECOT_SUBSCRIPTIONS)
    if subs.is_file():
        try:
            text = subs.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{subs} is not UTF-8 text") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return folders, names
