"""One mbox file per folder, with each message's flags in the header fields mutt and
Dovecot keep them in, so either reads them.

Layout (mailbox ``Work/Projects``)::

    ROOT/INBOX.mbox
    ROOT/Work.mbox
    ROOT/Work/Projects.mbox           levels are directories, names UTF-8
    ROOT/subscriptions                one subscribed name a line (UTF-8, ``/``)

Every folder is a file ending in ``.mbox`` (a folder with both mail and subfolders
fits, unlike a bare file and a directory of one name); an empty folder is an empty
file. Messages are framed as :func:`transfer.mbox_entry` frames them (mboxrd quoting,
the internal date on the ``From `` line) with, at the end of the header section:

- ``Status:`` ``R`` for \\Seen, and ``O`` (no longer new);
- ``X-Status:`` ``A`` \\Answered, ``F`` \\Flagged, ``T`` \\Draft, ``D`` \\Deleted;
- ``X-Keywords:`` the keywords, separated by spaces.

Reading takes these fields out again (and Dovecot's ``X-UID``, ``X-IMAP``,
``X-IMAPbase``, ``Content-Length``; a message with ``X-IMAP`` is Dovecot's folder
data, not mail), so a message comes back as it went out. A message that carried one
of these fields itself loses it: mbox has no other place for flags. Reading accepts
any mbox file in the tree, with or without the ``.mbox`` suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from letterlock.errors import InvalidInput
from letterlock.services.mail.maildir import is_keyword, make_private_dir, write_private
from letterlock.services.mail.transfer import SourceMessage, mbox_entry, read_mbox, to_crlf

HIERARCHY = "/"
SUFFIX = ".mbox"
SUBSCRIPTIONS = "subscriptions"
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


def read_mbox_with_flags(fh: BinaryIO, where: str) -> Iterator[SourceMessage]:
    """Messages of one mbox file with the flags its header fields carry."""
    for msg in read_mbox(fh):
        raw, flags, folder_data = split_flag_fields(msg.raw, f"{where} ({msg.origin})")
        if not folder_data:
            yield replace(msg, raw=raw, flags=flags)


# -- writing ----------------------------------------------------------------------------

def folder_file(root: Path, name: str) -> Path:
    return root.joinpath(*name.split(HIERARCHY)).with_name(
        name.split(HIERARCHY)[-1] + SUFFIX)


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
        with open(self.path, "rb") as fh:
            if not fh.read(1):
                return
            fh.seek(0)
            where = str(self.path)
            for msg in read_mbox_with_flags(fh, where):
                yield replace(msg, origin=f"{self.path.name}, {msg.origin}")


def is_mbox_tree(root: Path) -> bool:
    return any(p.suffix == SUFFIX for p in root.rglob("*" + SUFFIX) if p.is_file())


def read_tree(root: Path) -> tuple[list[MboxSource], list[str] | None]:
    """Every mbox file under ``root`` as a folder (name: its path, ``.mbox`` left
    out; ``inbox`` in any case is INBOX), INBOX first; and the subscriptions."""
    folders = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts) \
                or rel.as_posix() == SUBSCRIPTIONS or path.name.endswith(".part"):
            continue
        with open(path, "rb") as fh:
            head = fh.read(5)
        if head and head != b"From ":
            raise InvalidInput(f"{path} is not an mbox file: it does not start with a "
                               f"'From ' line")
        name = rel.as_posix()
        if name.endswith(SUFFIX):
            name = name[: -len(SUFFIX)]
        if name.upper() == "INBOX":
            name = "INBOX"
        folders.append(MboxSource(name, path))
    folders.sort(key=lambda f: (f.name != "INBOX", f.name))
    subs = root / SUBSCRIPTIONS
    names = None
    if subs.is_file():
        try:
            text = subs.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{subs} is not UTF-8 text") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return folders, names
