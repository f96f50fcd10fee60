"""The pure parser from a complete command buffer (without its final CRLF) to a typed
command of :mod:`letterlock.imap.parsing.commands`. Extensions with grammars of their
own (THREAD, ESORT, CATENATE) are read in :mod:`letterlock.imap.parsing.extensions`."""

from __future__ import annotations

from datetime import datetime

from letterlock.imap.parsing.commands import (
    Append,
    AppendPart,
    Authenticate,
    CancelUpdate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Namespace,
    Noop,
    QresyncParams,
    Rename,
    Search,
    Select,
    Sort,
    StartTls,
    Status,
    Store,
    Subscribe,
    Thread,
    Unselect,
)
from letterlock.imap.parsing.extensions import catenate, thread_args
from letterlock.imap.parsing.fetch import FetchModifiers, fetch_items, fetch_modifiers
from letterlock.imap.parsing.notify import notify_command
from letterlock.imap.parsing.primitives import (
    MAX_NUMBER64,
    ParseError,
    SeqSet,
    astring,
    at_end,
    atom,
    date_time,
    expect,
    fail,
    flag,
    flag_list,
    list_mailbox,
    number,
    nz_number,
    paren_list,
    peek,
    peek_ci,
    seq_set,
    sp,
    string,
    tag,
    text,
)
from letterlock.imap.parsing.quota import QUOTA_COMMANDS, quota_command
from letterlock.imap.parsing.search import (
    return_options,
    search_keys,
    search_program,
    sort_criteria,
)


def _mailbox(buf: bytes, pos: int) -> tuple[bytes, int]:
    return astring(buf, pos)


def _end(buf: bytes, pos: int) -> None:
    if not at_end(buf, pos):
        raise fail("end of command", buf, pos)


def _id_params(buf: bytes, pos: int) -> tuple[tuple[tuple[str, str | None], ...] | None, int]:
    if peek_ci(buf, pos, b"NIL"):
        return None, pos + 3
    pos = expect(buf, pos, b"(")
    out: list[tuple[str, str | None]] = []
    while not peek(buf, pos, b")"):
        key, pos = string(buf, pos)
        pos = sp(buf, pos)
        value: bytes | None
        if peek_ci(buf, pos, b"NIL"):
            value, pos = None, pos + 3
        else:
            value, pos = string(buf, pos)
        out.append((text(key), None if value is None else text(value)))
        if not peek(buf, pos, b")"):
            pos = sp(buf, pos)
        if len(out) > 30:
            raise ParseError("too many ID parameters")
    return tuple(out), pos + 1


def _select_params(buf: bytes, pos: int, cmd_tag: str, mailbox: bytes, readonly: bool,
                   ) -> Select:
    condstore = False
    qresync: QresyncParams | None = None
    if peek(buf, pos, b" ("):
        pos += 2
        while not peek(buf, pos, b")"):
            word, pos = atom(buf, pos)
            if word.upper() == "CONDSTORE":
                condstore = True
            elif word.upper() == "QRESYNC":
                pos = expect(buf, sp(buf, pos), b"(")
                validity, pos = nz_number(buf, pos)
                modseq, pos = number(buf, sp(buf, pos), MAX_NUMBER64)
                known: SeqSet | None = None
                match: tuple[SeqSet, SeqSet] | None = None
                if peek(buf, pos, b" ") and not peek(buf, pos, b" ("):
                    known, pos = seq_set(buf, pos + 1)
                if peek(buf, pos, b" ("):
                    seqs, pos = seq_set(buf, pos + 2)
                    uids, pos = seq_set(buf, sp(buf, pos))
                    pos = expect(buf, pos, b")")
                    match = (seqs, uids)
                pos = expect(buf, pos, b")")
                qresync = QresyncParams(validity, modseq, known, match)
            else:
                raise ParseError(f"unknown SELECT parameter {word}")
            if not peek(buf, pos, b")"):
                pos = sp(buf, pos)
        pos += 1
    _end(buf, pos)
    return Select(cmd_tag, mailbox, readonly, condstore, qresync)


_STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                 "HIGHESTMODSEQ", "APPENDLIMIT")


def _status_items(buf: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    pos = expect(buf, pos, b"(")
    items: list[str] = []
    while not peek(buf, pos, b")"):
        word, pos = atom(buf, pos)
        if word.upper() not in _STATUS_ITEMS:
            raise ParseError(f"unknown STATUS item {word}")
        items.append(word.upper())
        if not peek(buf, pos, b")"):
            pos = sp(buf, pos)
    if not items:
        raise ParseError("STATUS needs at least one item")
    return tuple(items), pos + 1


def _list(buf: bytes, pos: int, cmd_tag: str) -> List:
    selection: list[str] = []
    extended = False
    if peek(buf, pos, b"("):
        extended = True
        pos += 1
        while not peek(buf, pos, b")"):
            word, pos = atom(buf, pos)
            selection.append(word.upper())
            if not peek(buf, pos, b")"):
                pos = sp(buf, pos)
        pos = sp(buf, pos + 1)
    reference, pos = _mailbox(buf, pos)
    pos = sp(buf, pos)
    patterns: list[bytes] = []
    if peek(buf, pos, b"("):
        extended = True
        patterns, pos = paren_list(buf, pos, list_mailbox, empty=False)
    else:
        pat, pos = list_mailbox(buf, pos)
        patterns.append(pat)
    returns: list[str] = []
    status: tuple[str, ...] = ()
    if peek_ci(buf, pos, b" RETURN "):
        extended = True
        pos = expect(buf, pos + 8, b"(")
        while not peek(buf, pos, b")"):
            word, pos = atom(buf, pos)
            word = word.upper()
            if word == "STATUS":
                status, pos = _status_items(buf, sp(buf, pos))
            returns.append(word)
            if not peek(buf, pos, b")"):
                pos = sp(buf, pos)
        pos += 1
    _end(buf, pos)
    for opt in selection:
        if opt not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
            raise ParseError(f"unknown LIST selection option {opt}")
    if "RECURSIVEMATCH" in selection and not ({"SUBSCRIBED"} & set(selection)):
        raise ParseError("RECURSIVEMATCH needs another selection option")
    for opt in returns:
        if opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"):
            raise ParseError(f"unknown LIST return option {opt}")
    return List(cmd_tag, reference, tuple(patterns), tuple(selection), tuple(returns),
                status, extended=extended)


def _append(buf: bytes, pos: int, cmd_tag: str) -> Append:
    mailbox, pos = _mailbox(buf, pos)
    parts: list[AppendPart] = []
    while True:  # RFC 3502: 1*(SP append-message)
        part, pos = _append_message(buf, sp(buf, pos))
        parts.append(part)
        if pos >= len(buf) or buf[pos:pos + 1] != b" ":
            break
    _end(buf, pos)
    first = parts[0]
    return Append(cmd_tag, mailbox, first.flags, first.date, first.message, first.binary,
                  tuple(parts[1:]), first.catenate)


def _append_message(buf: bytes, pos: int) -> tuple[AppendPart, int]:
    flags: list[str] = []
    when: datetime | None = None
    if peek(buf, pos, b"("):
        flags, pos = flag_list(buf, pos)
        pos = sp(buf, pos)
    if peek(buf, pos, b'"'):
        when, pos = date_time(buf, pos)
        pos = sp(buf, pos)
    if peek_ci(buf, pos, b"CATENATE ("):
        cat_parts, pos = catenate(buf, pos + 9)
        return AppendPart(tuple(flags), when, b"", catenate=cat_parts), pos
    utf8 = peek_ci(buf, pos, b"UTF8 (")
    if utf8:
        # RFC 6855 3.4: APPEND ... UTF8 (literal8) for messages with UTF-8 headers.
        pos += 6
        if not peek(buf, pos, b"~{"):
            raise fail("literal8", buf, pos)
    binary = peek(buf, pos, b"~")
    message, pos = string(buf, pos, allow_binary=True)
    if utf8:
        pos = expect(buf, pos, b")")
    if peek(buf, pos, b"{") or peek(buf, pos, b'"'):
        raise fail("literal", buf, pos)
    return AppendPart(tuple(flags), when, message, binary), pos


def _store(buf: bytes, pos: int, cmd_tag: str, uid: bool) -> Store:
    s, pos = seq_set(buf, pos)
    pos = sp(buf, pos)
    unchanged: int | None = None
    if peek(buf, pos, b"("):
        pos = expect_ci_word(buf, pos + 1, b"UNCHANGEDSINCE")
        unchanged, pos = number(buf, sp(buf, pos), MAX_NUMBER64)
        pos = sp(buf, expect(buf, pos, b")"))
    word, pos = atom(buf, pos)
    word = word.upper()
    silent = word.endswith(".SILENT")
    base = word.removesuffix(".SILENT")
    mode = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}.get(base)
    if mode is None:
        raise ParseError(f"unknown STORE item {word}")
    pos = sp(buf, pos)
    flags: list[str]
    if peek(buf, pos, b"("):
        flags, pos = flag_list(buf, pos)
    else:
        flags = []
        while True:
            f, pos = flag(buf, pos)
            flags.append(f)
            if not peek(buf, pos, b" "):
                break
            pos += 1
    _end(buf, pos)
    return Store(cmd_tag, s, mode, silent, tuple(flags), uid, unchanged)


def expect_ci_word(buf: bytes, pos: int, word: bytes) -> int:
    if buf[pos : pos + len(word)].upper() != word:
        raise fail(word.decode(), buf, pos)
    return pos + len(word)


def _fetch(buf: bytes, pos: int, cmd_tag: str, uid: bool) -> Fetch:
    s, pos = seq_set(buf, pos)
    items, pos = fetch_items(buf, sp(buf, pos))
    modifiers = FetchModifiers()
    if peek(buf, pos, b" ("):
        modifiers, pos = fetch_modifiers(buf, pos + 1)
    _end(buf, pos)
    if modifiers.vanished and not uid:
        raise ParseError("VANISHED is only allowed in UID FETCH")
    return Fetch(cmd_tag, s, tuple(items), uid, modifiers)


def parse_command(buf: bytes) -> Command:
    """Parse one complete command (without its final CRLF). Raises ParseError with
    the tag set whenever the tag could be read."""
    cmd_tag, pos = tag(buf, 0)
    try:
        return _parse(buf, sp(buf, pos), cmd_tag)
    except ParseError as exc:
        exc.tag = cmd_tag
        raise


def _parse(buf: bytes, pos: int, t: str) -> Command:
    word, pos = atom(buf, pos)
    name = word.upper()
    uid = False
    if name == "UID":
        uid = True
        word, pos = atom(buf, sp(buf, pos))
        name = word.upper()
        if name not in ("FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE", "SORT",
                        "THREAD"):
            raise ParseError(f"UID {word} is not a command")
    simple: dict[str, type[Command]] = {
        "CAPABILITY": Capability, "NOOP": Noop, "LOGOUT": Logout, "STARTTLS": StartTls,
        "NAMESPACE": Namespace, "IDLE": Idle, "CHECK": Check, "CLOSE": Close,
        "UNSELECT": Unselect,
    }
    if name in simple:
        _end(buf, pos)
        return simple[name](t)
    if name == "EXPUNGE":
        if uid:
            s, pos = seq_set(buf, sp(buf, pos))
            _end(buf, pos)
            return Expunge(t, s)
        _end(buf, pos)
        return Expunge(t)
    if at_end(buf, pos):
        raise ParseError(f"{name} needs arguments" if name in _KNOWN else
                         f"unknown command {word}")
    if name not in _KNOWN:
        raise ParseError(f"unknown command {word}")
    pos = sp(buf, pos)
    if name == "ID":
        params, pos = _id_params(buf, pos)
        _end(buf, pos)
        return Id(t, params)
    if name == "LOGIN":
        user, pos = astring(buf, pos)
        password, pos = astring(buf, sp(buf, pos))
        _end(buf, pos)
        return Login(t, user, password)
    if name == "AUTHENTICATE":
        mech, pos = atom(buf, pos)
        initial: bytes | None = None
        if peek(buf, pos, b" "):
            pos += 1
            start = pos
            while pos < len(buf) and buf[pos : pos + 1] not in (b" ",):
                pos += 1
            initial = buf[start:pos]
        _end(buf, pos)
        return Authenticate(t, mech.upper(), initial)
    if name == "ENABLE":
        caps = []
        while True:
            cap, pos = atom(buf, pos)
            caps.append(cap.upper())
            if at_end(buf, pos):
                break
            pos = sp(buf, pos)
        return Enable(t, tuple(caps))
    if name in ("SELECT", "EXAMINE"):
        mailbox, pos = _mailbox(buf, pos)
        return _select_params(buf, pos, t, mailbox, name == "EXAMINE")
    if name == "CREATE":
        mailbox, pos = _mailbox(buf, pos)
        uses: list[str] = []
        if peek(buf, pos, b" ("):
            pos = expect_ci_word(buf, pos + 2, b"USE")
            uses, pos = flag_list(buf, sp(buf, pos))
            pos = expect(buf, pos, b")")
        _end(buf, pos)
        return Create(t, mailbox, tuple(uses))
    if name == "DELETE":
        mailbox, pos = _mailbox(buf, pos)
        _end(buf, pos)
        return Delete(t, mailbox)
    if name == "RENAME":
        old, pos = _mailbox(buf, pos)
        new, pos = _mailbox(buf, sp(buf, pos))
        _end(buf, pos)
        return Rename(t, old, new)
    if name in ("SUBSCRIBE", "UNSUBSCRIBE"):
        mailbox, pos = _mailbox(buf, pos)
        _end(buf, pos)
        return Subscribe(t, mailbox, name == "SUBSCRIBE")
    if name == "LIST":
        return _list(buf, pos, t)
    if name == "LSUB":
        reference, pos = _mailbox(buf, pos)
        pattern, pos = list_mailbox(buf, sp(buf, pos))
        _end(buf, pos)
        return List(t, reference, (pattern,), lsub=True)
    if name == "STATUS":
        mailbox, pos = _mailbox(buf, pos)
        items, pos = _status_items(buf, sp(buf, pos))
        _end(buf, pos)
        return Status(t, mailbox, items)
    if name == "APPEND":
        return _append(buf, pos, t)
    if name == "SEARCH":
        program, pos = search_program(buf, pos)
        _end(buf, pos)
        return Search(t, program, uid)
    if name == "FETCH":
        return _fetch(buf, pos, t, uid)
    if name == "SORT":
        returns, partial, pos = return_options(buf, pos)
        criteria, pos = sort_criteria(buf, pos)
        charset, pos = astring(buf, sp(buf, pos))
        keys, pos = search_keys(buf, sp(buf, pos))
        _end(buf, pos)
        return Sort(t, criteria, charset.decode("ascii", "replace"), keys, uid, returns,
                    partial)
    if name == "CANCELUPDATE":
        tags: list[str] = []
        while True:
            quoted, pos = string(buf, pos)
            tags.append(text(quoted))
            if at_end(buf, pos):
                return CancelUpdate(t, tuple(tags))
            pos = sp(buf, pos)
    if name == "THREAD":
        algorithm, thread_charset, thread_keys, pos = thread_args(buf, pos)
        _end(buf, pos)
        return Thread(t, algorithm, thread_charset, thread_keys, uid)
    if name == "STORE":
        return _store(buf, pos, t, uid)
    if name in ("COPY", "MOVE"):
        s, pos = seq_set(buf, pos)
        mailbox, pos = _mailbox(buf, sp(buf, pos))
        _end(buf, pos)
        return Copy(t, s, mailbox, uid, name == "MOVE")
    if name in QUOTA_COMMANDS:
        quota, pos = quota_command(name, buf, pos, t)
        _end(buf, pos)
        return quota
    if name == "NOTIFY":
        notify, pos = notify_command(buf, pos, t)
        _end(buf, pos)
        return notify
    raise ParseError(f"unknown command {word}")


_KNOWN = frozenset({"ID", "LOGIN", "AUTHENTICATE", "ENABLE", "SELECT", "EXAMINE", "CREATE",
                    "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS",
                    "APPEND", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT",
                    "THREAD", "CANCELUPDATE", "NOTIFY"}) | QUOTA_COMMANDS
