"""Maildir++ folder trees, written and read the way Dovecot (and Courier) lay them
out, so a tree exported here is a Dovecot user's mail as it stands and a Dovecot
user's Maildir comes in whole.

Layout (mailbox ``Work/Projects`` of letterlock, hierarchy ``/``)::

    ROOT/cur, new, tmp                 INBOX
    ROOT/.Work/                        Work (holds a ``maildirfolder`` file)
    ROOT/.Work.Projects/               Work/Projects
    ROOT/.Work.Projects/dovecot-keywords   "0 $Forwarded" ...: keyword letters a-z
    ROOT/subscriptions                 Dovecot's format 2: "V\\t2\\n\\n", one name a
                                       line, hierarchy as TAB

- Folder names on disk are modified UTF-7 (RFC 3501 5.1.3), one component per level
  joined with ``.``; a ``.`` or ``\\`` inside a name is written ``\\2e`` / ``\\5c``
  (the escape of Dovecot's listescape plugin, which must be enabled to show such a
  name as it was).
- A message is one file, LF line endings, named
  ``TIME.MnPpid.letterlock,S=size,W=rfc822size:2,FLAGS``: the standard letters D
  (\\Draft), F (\\Flagged), R (\\Answered), S (\\Seen), T (\\Deleted), then a-z for the
  folder's keywords (26 at most per folder, as Dovecot allows). ``P`` (passed) reads
  as ``$Forwarded``. The file's modification time is the internal date.
- Files are written 0600 and directories 0700: the export is plaintext.

Reading follows ``dovecot-uidlist`` for the order of messages where there is one
(UIDs ascending), else the file names (Dovecot's order: time, then microseconds).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from letterlock.errors import InvalidInput
from letterlock.mime import utf7
from letterlock.services.mail.mailbox_folders import HIERARCHY
from letterlock.services.mail.transfer import SourceMessage, to_lf

WRITE_LETTERS = (("D", "\\Draft"), ("F", "\\Flagged"), ("R", "\\Answered"), ("S", "\\Seen"),
                 ("T", "\\Deleted"))
READ_LETTERS = {**{letter: flag for letter, flag in WRITE_LETTERS}, "P": "$Forwarded"}
MAX_KEYWORDS = 26
SUBSCRIPTIONS = "subscriptions"
KEYWORDS_FILE = "dovecot-keywords"
UIDLIST_FILE = "dovecot-uidlist"
_KEYWORD = re.compile(r"[!#$&'+-\[^-z|}~]+")
"""An IMAP keyword is an atom (RFC 9051 9): printable ASCII but ( ) { % * " \\ ] and
space; it may not start with a backslash (those are system flags)."""
_ESCAPED = re.compile(r"\\([0-9a-fA-F]{2})")
_TIME_PREFIX = re.compile(r"(\d+)(?:\.M(\d+))?")


def is_keyword(flag: str) -> bool:
    return bool(_KEYWORD.fullmatch(flag))


# -- names ------------------------------------------------------------------------------

def encode_component(part: str) -> str:
    return utf7.encode(part).replace("\\", "\\5c").replace(".", "\\2e")


def decode_component(part: str, where: str) -> str:
    try:
        text = utf7.decode(part)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {part!r} is not a Maildir++ folder name "
                           f"(modified UTF-7): {exc}") from None
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def folder_dir(name: str) -> str:
    """The directory name of mailbox ``name`` under the Maildir++ root ("" for INBOX)."""
    if name == "INBOX":
        return ""
    return "." + ".".join(encode_component(p) for p in name.split(HIERARCHY))


def folder_name(dirname: str, where: str) -> str:
    """The mailbox name of Maildir++ directory ``dirname`` (".Work.Projects")."""
    parts = dirname[1:].split(".")
    if any(not p for p in parts):
        raise InvalidInput(f"{where}: {dirname!r} is not a Maildir++ folder name")
    name = HIERARCHY.join(decode_component(p, where) for p in parts)
    return "INBOX" + name[5:] if name.upper().startswith("INBOX") and (
        len(name) == 5 or name[5] == HIERARCHY) else name


# -- writing ----------------------------------------------------------------------------

def make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def write_private(path: Path, data: bytes, mtime: float | None = None) -> None:
    """Write ``data`` to a new 0600 file (through a temporary name beside it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


class MaildirFolder:
    """One folder being written; :meth:`close` writes its keyword list."""

    def __init__(self, path: Path, name: str, stamp: int) -> None:
        self.path, self.name, self._stamp = path, name, stamp
        for sub in ("cur", "new", "tmp"):
            make_private_dir(path / sub)
        if name != "INBOX":
            write_private(path / "maildirfolder", b"")
        self._keywords: dict[str, str] = {}
        self._seq = 0

    def _letters(self, flags: frozenset[str]) -> str:
        system = "".join(letter for letter, flag in WRITE_LETTERS if flag in flags)
        own = []
        for flag in sorted(f for f in flags if not f.startswith("\\")):
            if flag not in self._keywords:
                if len(self._keywords) == MAX_KEYWORDS:
                    raise InvalidInput(
                        f"mailbox {self.name} uses more than {MAX_KEYWORDS} keywords, "
                        f"more than a Maildir folder can hold: export it as mbox instead")
                self._keywords[flag] = chr(ord("a") + len(self._keywords))
            own.append(self._keywords[flag])
        return system + "".join(sorted(own))

    def add(self, raw: bytes, flags: frozenset[str], internaldate: datetime) -> None:
        """One message (CRLF as stored) with its flags and internal date."""
        self._seq += 1
        body = to_lf(raw)
        # One time stamp for the whole export and a rising "microseconds" part keep
        # the stored order: Dovecot numbers new files by (time, microseconds).
        base = f"{self._stamp}.M{self._seq}P{os.getpid()}.letterlock"
        name = f"{base},S={len(body)},W={len(raw)}:2,{self._letters(flags)}"
        tmp = self.path / "tmp" / base
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        when = internaldate.timestamp()
        os.utime(tmp, (when, when))
        os.replace(tmp, self.path / "cur" / name)

    def close(self) -> None:
        if self._keywords:
            lines = "".join(f"{ord(letter) - ord('a')} {flag}\n"
                            for flag, letter in sorted(self._keywords.items(),
                                                       key=lambda kv: kv[1]))
            write_private(self.path / KEYWORDS_FILE, lines.encode("ascii"))


class MaildirWriter:
    """A Maildir++ tree under ``root`` (a new or empty directory)."""

    def __init__(self, root: Path, stamp: int) -> None:
        self.root = root
        self._stamp = stamp
        make_private_dir(root)

    def folder(self, name: str) -> MaildirFolder:
        path = self.root / folder_dir(name) if name != "INBOX" else self.root
        if name != "INBOX":
            make_private_dir(path)
        return MaildirFolder(path, name, self._stamp)

    def write_subscriptions(self, names: Sequence[str]) -> None:
        lines = ["\t".join(encode_component(p) for p in n.split(HIERARCHY)) for n in names]
        write_private(self.root / SUBSCRIPTIONS,
                      ("V\t2\n\n" + "".join(line + "\n" for line in lines)).encode("ascii"))


# -- reading ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MaildirSource:
    """One folder of a Maildir++ tree."""

    name: str
    path: Path

    def messages(self) -> Iterator[SourceMessage]:
        keywords = read_keywords(self.path)
        for sub, file in _ordered_files(self.path):
            letters = file.name.partition(":2,")[2]
            flags = []
            for letter in letters:
                if letter in READ_LETTERS:
                    flags.append(READ_LETTERS[letter])
                elif letter in keywords:
                    flags.append(keywords[letter])
            yield SourceMessage(file.read_bytes(), tuple(flags),
                                datetime.fromtimestamp(int(file.stat().st_mtime), UTC),
                                f"{self.path.name}/{sub}/{file.name}")


def read_keywords(folder: Path) -> Mapping[str, str]:
    """Letter -> keyword, from the folder's ``dovecot-keywords`` (none without one)."""
    path = folder / KEYWORDS_FILE
    if not path.is_file():
        return {}
    out = {}
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        index, _, word = line.decode("ascii", "replace").strip().partition(" ")
        if not index.isdigit() or int(index) >= MAX_KEYWORDS or not is_keyword(word):
            raise InvalidInput(f"{path}: line {number} is not '<0-25> <keyword>'")
        out[chr(ord("a") + int(index))] = word
    return out


def _uid_order(folder: Path) -> dict[str, int]:
    """Base file name -> UID, from ``dovecot-uidlist`` (empty if absent or odd)."""
    path = folder / UIDLIST_FILE
    if not path.is_file():
        return {}
    order = {}
    for line in path.read_text("utf-8", "replace").splitlines()[1:]:
        uid, _, rest = line.partition(" ")
        base = rest.rpartition(":")[2] if ":" in rest else ""
        if uid.isdigit() and base:
            order[base] = int(uid)
    return order


def _name_key(name: str) -> tuple[int, int, str]:
    match = _TIME_PREFIX.match(name)
    if not match:
        return (2**63, 0, name)
    return (int(match.group(1)), int(match.group(2) or 0), name)


def _ordered_files(folder: Path) -> list[tuple[str, Path]]:
    files = [(sub, path) for sub in ("cur", "new") if (folder / sub).is_dir()
             for path in (folder / sub).iterdir() if path.is_file()]
    uids = _uid_order(folder)

    def key(item: tuple[str, Path]) -> tuple[int, tuple[int, int, str]]:
        base = item[1].name.partition(":")[0]
        return (uids.get(base, 2**63), _name_key(base))

    return sorted(files, key=key)


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def read_tree(root: Path) -> tuple[list[MaildirSource], list[str] | None]:
    """The folders of the Maildir++ tree at ``root`` (INBOX first, then by name) and
    its subscriptions (None when it has no subscriptions file)."""
    folders = [MaildirSource("INBOX", root)]
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") and entry.name not in (".", "..") \
                and entry.is_dir() and is_maildir(entry):
            folders.append(MaildirSource(folder_name(entry.name, str(root)), entry))
    return folders, read_subscriptions(root / SUBSCRIPTIONS)


def read_subscriptions(path: Path) -> list[str] | None:
    """Names from a Dovecot subscriptions file (format 2: TAB-separated levels; the
    older format: one name a line, levels joined with ``.``)."""
    if not path.is_file():
        return None
    lines = path.read_bytes().decode("ascii", "replace").split("\n")
    if lines and lines[0].startswith("V\t"):
        lines, separator = lines[1:], "\t"
    else:
        separator = "."
    names = []
    for line in lines:
        if line.strip():
            name = HIERARCHY.join(decode_component(p, str(path))
                                  for p in line.split(separator))
            names.append("INBOX" if name.upper() == "INBOX" else name)
    return names
