"""Fuzzing every parser that reads what a client or a file supplies.

A target takes bytes and must either return or raise one of the errors its caller
turns into a protocol reply (a BAD, a 5xx, a 400, a clear import error). Anything
else is a crash; an input that takes over a second is a hang. Inputs come from the
corpus kept beside this file (``corpus/<target>/``) and from mutations of it: bit
flips, odd octets, tokens of the target's grammar, deleted, repeated and spliced
pieces, long numbers. The mutations are drawn from a seeded generator, so a run is
repeatable and a finding can be replayed by its seed and index.

``tests/fuzz/run.py`` runs a target for as many inputs as asked (the closing
notes quote 1,000,000 per target); ``tests/fuzz/test_fuzz.py`` runs a short budget of
each in CI.
"""

from __future__ import annotations

import io
import json
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from letterlock.errors import InvalidInput
from letterlock.http.json_body import UnacceptableJson, check_json
from letterlock.imap import search_text, views
from letterlock.imap.parsing import ParseError, parse_command
from letterlock.mime import dates, headers, sections, structure
from letterlock.mime import summary as summaries
from letterlock.services.mail import maildir, mbox_folders
from letterlock.services.mail.transfer import SourceMessage, check_message, mbox_date, read_mbox
from letterlock.sieve import Envelope as SieveEnvelope
from letterlock.sieve import SieveError
from letterlock.sieve import evaluate as sieve_evaluate
from letterlock.sieve import parse as sieve_parse
from letterlock.smtp.parse import (
    PathError,
    decode_data,
    has_bare_newlines,
    parse_mail_params,
    parse_path_arg,
)

CORPUS = Path(__file__).parent / "corpus"
MAX_INPUT = 64 * 1024
HANG_S = 1.0
"""An input that takes longer than this is reported as a hang."""
ABORT_S = 10
"""An input still running after this is interrupted (and reported as a hang)."""


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    expected: tuple[type[BaseException], ...]
    """Errors the caller answers with a protocol reply: not crashes."""
    tokens: tuple[bytes, ...]
    """Pieces of the target's grammar the mutator inserts."""


# -- targets ----------------------------------------------------------------------------

def _imap(data: bytes) -> object:
    return parse_command(data)


def _smtp(data: bytes) -> object:
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    _verb, _, arg_bytes = line.partition(b" ")
    # As smtp/protocol.py hands an argument to the parsers.
    arg = str(arg_bytes.strip(), "utf-8", "surrogateescape") if arg_bytes else None
    for keyword, null in (("FROM:", True), ("TO:", False)):
        try:
            path = parse_path_arg(arg, keyword, allow_null=null)
        except PathError:
            continue
        if keyword == "FROM:":
            parse_mail_params(path.params, size_limit=1 << 20, auth=True)
    has_bare_newlines(data)
    return decode_data(data)


def _mime(data: bytes) -> object:
    summary = summaries.summarize(data)
    made = views.make(summary)  # ENVELOPE, BODYSTRUCTURE, BODY and SEARCH's fields
    fields = headers.split_fields(summary.header)
    for f in fields:
        headers.decode_header_text(f.value)
        if f.key in search_text.ADDRESS_FIELDS:
            headers.parse_addresses(f.value)
        if f.key == "date":
            dates.sent_at(headers.text(f.value))
    tree = structure.parse(data, fields)
    for path, part in _numbered(tree):
        if part.is_multipart:
            continue
        if part.type.lower() == "text":
            structure.part_text(data, part)
        sections.section(data, tree, path, None)
        sections.section(data, tree, path, "HEADER.FIELDS", ("subject", "from"))
        sections.section(data, tree, path, "TEXT")
        if path:
            sections.section(data, tree, path, "MIME")
        sections.binary_section(data, tree, path)
    return made


def _numbered(tree: structure.Part) -> Iterator[tuple[tuple[int, ...], structure.Part]]:
    stack: list[tuple[tuple[int, ...], structure.Part]] = [((), tree)]
    while stack:
        path, part = stack.pop()
        yield path, part
        stack.extend(((*path, i), child) for i, child in enumerate(part.children, 1)
                     if len(path) < 8)


def _json(data: bytes) -> object:
    check_json(data)
    return json.loads(data)  # what the route then reads (ValueError: its own 422)


def _mbox(data: bytes) -> object:
    """Both mbox readers: the whole-account import's (Content-Length aware, flags
    from Status/X-Status/X-Keywords) and the single-file one."""
    messages = []
    for number, (from_line, raw) in enumerate(mbox_folders.split_mbox(data), 1):
        body, flags, _folder_data = mbox_folders.split_flag_fields(
            raw, f"fuzz.mbox (message {number})")
        messages.append(SourceMessage(body, flags, mbox_date(from_line), str(number)))
    messages += list(read_mbox(io.BytesIO(data)))
    for msg in messages:
        check_message(msg, Path("fuzz.mbox"))
    return messages


def _maildir_name(data: bytes) -> object:
    text = data.decode("utf-8", "surrogateescape")
    name = maildir.folder_name("." + text, "fuzz")
    return maildir.folder_dir(name)


_SIEVE_MESSAGE = (b"From: a@b.example\r\nTo: me@example.com\r\nSubject: =?utf-8?q?x?=\r\n"
                  b"Content-Type: text/plain\r\n\r\nbody\r\n")


def _sieve(data: bytes) -> object:
    script = sieve_parse(data.decode("utf-8", "surrogateescape"))
    return sieve_evaluate(script, _SIEVE_MESSAGE, SieveEnvelope("a@b.example", "me@example.com"))


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("imap", _imap, (ParseError,), (
        b"FETCH", b"UID", b"STORE", b"SEARCH", b"SORT", b"THREAD", b"SELECT", b"APPEND",
        b"LIST", b"STATUS", b"COPY", b"MOVE", b"ENABLE", b"ID", b"AUTHENTICATE", b"LOGIN",
        b" ", b"(", b")", b"[", b"]", b"<", b">", b"{", b"}", b"{5}\r\n", b"{3+}\r\n",
        b"~{2}\r\n", b'"', b"\\", b"*", b"%", b"1:*", b"$", b"4294967295", b"4294967296",
        b"18446744073709551616", b"NIL", b"BODY.PEEK[", b"HEADER.FIELDS", b"MIME",
        b"BINARY[", b"RETURN", b"(PARTIAL 1:5)", b"CHARSET", b"UTF-8", b"OR", b"NOT",
        b"CHANGEDSINCE", b"MODSEQ", b"\\Seen", b"\r\n", b"\x00", b"\xff", b"UTF8",
        b"CATENATE", b"URL", b"REFERENCES", b"ORDEREDSUBJECT", b"CONTEXT", b"UPDATE")),
    Target("smtp", _smtp, (PathError,), (
        b"MAIL FROM:", b"RCPT TO:", b"<", b">", b"@", b"<>", b" SIZE=", b" BODY=8BITMIME",
        b" SMTPUTF8", b" AUTH=", b" RET=HDRS", b"\"", b"\\", b"[", b"]", b"IPv6:", b":",
        b",", b"99999999999999999999", b"\r\n.\r\n", b"\r\n..", b"\n", b"\r", b"\x00",
        b"\xc3\xa9", b"\xff")),
    Target("mime", _mime, (), (
        b"\r\n", b"\r\n\r\n", b"\n", b": ", b"\r\n ", b"Content-Type: ", b"multipart/mixed",
        b"message/rfc822", b"; boundary=", b"--", b"; charset=", b"=?utf-8?q?", b"=?x?b?",
        b"?=", b"Content-Transfer-Encoding: ", b"base64", b"quoted-printable", b"=\r\n",
        b"=XX", b"From: ", b"Subject: ", b"Date: ", b"99999", b"<", b">", b"@", b"\"",
        b"(", b")", b",", b";", b"\x00", b"\xff", b"filename*=", b"utf-8''", b"%ff")),
    Target("json", _json, (UnacceptableJson, ValueError), (
        b"{", b"}", b"[", b"]", b'"', b":", b",", b"1e999999", b"-", b"NaN", b"Infinity",
        b"null", b"true", b"9" * 40, b"\\u0000", b"\\ud800", b"[" * 70, b".5", b"\x00")),
    Target("mbox", _mbox, (InvalidInput,), (
        b"From ", b"From a@b Mon Jan  1 00:00:00 2024\n", b">From ", b"\n", b"\r\n",
        b"Status: RO\n", b"X-Status: AF\n", b"X-Keywords: ", b"$Junk", b"X-IMAP: ",
        b": ", b"\n\n", b"\x00", b"\xff", b"Subject: x\n")),
    Target("sieve", _sieve, (SieveError,), (
        b"require", b'"fileinto"', b"if", b"elsif", b"else", b"{", b"}", b"(", b")", b"[",
        b"]", b",", b";", b"header", b"address", b"body", b"envelope", b"size", b":over",
        b":is", b":matches", b":contains", b":count", b'"gt"', b":comparator",
        b'"i;ascii-numeric"', b"text:\n", b"\n.\n", b"..", b"#", b"/*", b"*/", b"\r\n",
        b"99999999999999999999", b"10K", b'"${hex:c3 a9}"', b'"${unicode:110000}"',
        b"vacation", b":days", b"redirect", b"fileinto", b"keep", b"discard", b"stop",
        b"not", b"anyof", b"allof", b"\\", b'"*?"', b"\x00", b"\xff")),
    Target("maildir-name", _maildir_name, (InvalidInput,), (
        b".", b"&", b"-", b"&AOk-", b"&-", b"\\2e", b"\\5c", b"INBOX", b"/", b"\x00",
        b"\xff", b"&Jjo")),
)}


# -- mutation ---------------------------------------------------------------------------

def corpus(target: str) -> list[bytes]:
    directory = CORPUS / target
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()] \
        if directory.is_dir() else []


_ODD = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\r", b"\n", b"\r\n", b" ", b"\t", b"{", b"(",
        b")", b'"', b"\\", b"%", b"*", b"=", b"\xc3", b"\xe2\x80\xae", b"\xf0\x9f\x92\xa9")


class Mutator:
    """Inputs for one target: its corpus first, then mutations of it."""

    def __init__(self, seeds: Sequence[bytes], tokens: Sequence[bytes], seed: int) -> None:
        self.seeds = list(seeds) or [b""]
        self.tokens = list(tokens) + list(_ODD)
        self.rng = random.Random(seed)

    def inputs(self, count: int) -> Iterator[bytes]:
        yield from self.seeds[:count]
        for _ in range(max(0, count - len(self.seeds))):
            yield self.mutate()

    def mutate(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.seeds))
        for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
            self._one(data, rng)
        return bytes(data[:MAX_INPUT])

    def _one(self, data: bytearray, rng: random.Random) -> None:
        pos = rng.randint(0, len(data))
        op = rng.randrange(11)
        if op == 0 and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op in (2, 3):
            data[pos:pos] = rng.choice(self.tokens)
        elif op == 4 and data:
            end = min(len(data), pos + rng.choice((1, 2, 4, 16, 256)))
            del data[pos:end]
        elif op == 5 and data:
            end = min(len(data), pos + rng.choice((1, 4, 32)))
            data[pos:pos] = data[pos:end] * rng.choice((2, 8, 100, 1000))
        elif op == 6:
            other = rng.choice(self.seeds)
            cut = rng.randint(0, len(other))
            data[pos:] = other[cut:]
        elif op == 7:
            data[pos:pos] = b"9" * rng.choice((10, 20, 40, 400, 5000))
        elif op in (8, 9):
            # One word for another: keeps the rest of the grammar whole.
            words = bytes(data).split(b" ")
            words[rng.randrange(len(words))] = rng.choice(self.tokens).strip() or b"x"
            data[:] = b" ".join(words)
        else:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))


# -- running ----------------------------------------------------------------------------

class _Interrupted(BaseException):
    """Raised by the alarm in an input that runs past ABORT_S."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Interrupted


@dataclass
class Report:
    target: str
    inputs: int = 0
    accepted: int = 0
    """Inputs the target took without an error (the rest got the expected one)."""
    seconds: float = 0.0
    slowest: float = 0.0
    crashes: list[tuple[str, bytes]] = field(default_factory=list)
    hangs: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.crashes and not self.hangs


def run(target: Target, count: int, seed: int,
        on_finding: Callable[[str, bytes], None] | None = None) -> Report:
    """Run ``count`` inputs (the corpus, then mutations) through ``target``."""
    report = Report(target.name)
    mutator = Mutator(corpus(target.name), target.tokens, seed)
    old = signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    try:
        for data in mutator.inputs(count):
            began = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, ABORT_S)
            try:
                target.run(data)
                report.accepted += 1
            except target.expected:
                pass
            except _Interrupted:
                pass
            except Exception as exc:  # a crash: what is looked for
                report.crashes.append((f"{type(exc).__name__}: {exc}"[:300], data))
                if on_finding:
                    on_finding("crash", data)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.perf_counter() - began
            report.slowest = max(report.slowest, took)
            if took > HANG_S:
                report.hangs.append((took, data))
                if on_finding:
                    on_finding("hang", data)
            report.inputs += 1
    finally:
        signal.signal(signal.SIGALRM, old)
        report.seconds = time.perf_counter() - started
    return report
