"""letterlock beside Dovecot: the same mail, the same client, one run, one table.

    .venv/bin/python bench/vs_dovecot.py [--messages 10000] [--size 1024]
        [--parts lmtp,login,storm,fetch,search,mixed,memory]
        [--letterlock-imap-processes N] [--letterlock-env KEY=VALUE ...] [--json FILE]

Three servers run at once on loopback, each as its own subprocess under one temp
directory: Dovecot 2.3 as Debian ships it (bench/dovecot.py: mdbox, {PLAIN}
passwords), the same Dovecot with the mail_crypt plugin (per-user keys locked by the
user's password), and letterlock (`letterlock init`, `user add`, `serve`, production
Argon2 settings). Each figure is taken on the three servers one after the other, with
the same client code, so the ratios compare like with like on this machine at this
moment. The yardstick for issue 11 ("Reading mail at Dovecot speed").

What is measured (every mailbox is loaded over LMTP first; both servers fsync as they
do by default):

- lmtp: N generated messages (~SIZE bytes, From/To/Subject/Date/Message-ID/MIME,
  one in five multipart/alternative) delivered over LMTP by 20 concurrent sessions,
  and a second batch of 64 KiB messages; messages/s. Each session comes from its own
  loopback address (127.0.0.2, ...), so letterlock's per-address command budget is
  not what is measured (--lmtp-one-address sends all from 127.0.0.1); any 421 reply
  is counted and the message sent again.
- login: connect, LOGIN, LOGOUT, --logins times; the LOGIN command's time, first
  login of the user since the server started apart from the rest (median, p90).
- storm: --storm connections (after one earlier login), opened in waves of at most
  --storm-wave (a listen backlog's worth), each logging in; seconds until all are in.
- fetch: SELECT INBOX (median of fresh sessions), then on one session UID FETCH 1:*
  of (FLAGS BODY.PEEK[HEADER]), BODY.PEEK[], (FLAGS), (ENVELOPE), (BODYSTRUCTURE):
  messages/s, best of --fetch-rounds after one warm-up.
- search: SEARCH SUBJECT/FROM/BODY/TEXT of a word in 1% of the messages (no Dovecot
  FTS plugin; letterlock's sealed text index is made by its first search, from the
  text postings sealed at delivery): the first search and the best repeat, ms, in
  the order --search-keys gives (BODY first: the mailbox's first search is BODY);
  then BODY and TEXT as the first command of a new session, and the size of
  letterlock's stored text index.
- mixed: imaptest (bench/imaptest_build.sh) with 10 clients logout=0 and 50 clients
  with its default logouts, 20 s each, on a separate user; FETCH and APPEND counts and
  errors. Without imaptest, an asyncio client of this file does a similar mix.
- memory: --idle connections logged in, INBOX selected, in IDLE, on the plain port
  and over TLS; growth of the server's whole process tree, KiB per connection, as
  PSS (shared pages divided among the processes sharing them: fair to Dovecot's
  process per connection) and as RSS (shared pages counted in every process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dovecot  # bench/dovecot.py, beside this file

PASSWORD = "benchmark password"
MAIN = "bench@example.test"
BIG = "big@example.test"
MIXED = "mixed@example.test"
IDLE = "idle@example.test"
USERS = (MAIN, BIG, MIXED, IDLE)
MARKER = "quixotic"
"""In the Subject, the From name and the body of one message in a hundred."""
ALL_PARTS = ("lmtp", "login", "storm", "fetch", "search", "mixed", "memory")
SERVERS = ("dovecot", "dovecot-crypt", "letterlock")
LABELS = {"dovecot": "Dovecot plain", "dovecot-crypt": "Dovecot mail-crypt",
          "letterlock": "letterlock"}
REPO = Path(__file__).resolve().parent.parent
HIDDEN = ("dovecot_conf", "instance")
"""Server details left out of the printed summary (in the JSON, or internal)."""


# -- the mail --------------------------------------------------------------------------------

_WORDS = [
    "meeting", "agenda", "budget", "quarter", "review", "draft", "report", "invoice",
    "schedule", "project", "team", "update", "notes", "summary", "proposal", "contract",
    "delivery", "order", "payment", "account", "customer", "service", "support", "ticket",
    "issue", "release", "version", "feature", "design", "plan", "travel", "hotel", "flight",
    "booking", "dinner", "lunch", "weekend", "holiday", "family", "garden", "kitchen",
    "window", "coffee", "morning", "evening", "tomorrow", "yesterday", "monday", "tuesday",
    "friday", "please", "thanks", "regards", "attached", "below", "above", "following",
    "question", "answer", "idea", "change", "request", "approve", "confirm", "cancel",
    "remind", "office", "building", "parking", "printer", "network", "server", "backup",
    "letter", "paper", "photo", "picture", "music", "concert", "ticket", "museum", "river",
    "mountain", "city", "north", "south", "station", "train", "bus", "bicycle", "market",
    "price", "offer", "discount", "receipt"
]
_FIRST = [
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo"
]
_LAST = [
    "Archer", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jansen", "Kowalski"
]


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _wrap(text: str, width: int = 72) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _paragraphs(rng: random.Random, budget: int, opening: str) -> list[str]:
    """Paragraphs of sentences, about ``budget`` bytes in all once wrapped."""
    paragraphs: list[str] = []
    current = opening
    used = 0
    while used + len(current) < budget:
        sentence = _sentence(rng, rng.randint(6, 14))
        current = f"{current} {sentence}" if current and not current.endswith(": ") \
            else current + sentence
        if len(current) > 250 and rng.random() < 0.5:
            paragraphs.append(current)
            used += len(current) + 6
            current = ""
    if current:
        paragraphs.append(current)
    return paragraphs


def make_messages(count: int, size: int, seed: int = 11, to: str = MAIN) -> list[bytes]:
    """``count`` messages of about ``size`` bytes each, CRLF line ends, deterministic."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 2, 8, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        marked = i % 100 == 42
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {MARKER.capitalize()} {last}" if marked else f"{first} {last}"
        subject = _sentence(rng, rng.randint(3, 7))[:-1]
        if marked:
            subject += f" {MARKER}"
        date = (start + timedelta(minutes=7 * i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        head = [f'From: "{name}" <{first.lower()}.{last.lower()}@mail{i % 37}.example.org>',
                f"To: Bench User <{to}>",
                f"Subject: {subject}",
                f"Date: {date}",
                f"Message-ID: <{rng.getrandbits(64):016x}.{i}@mail{i % 37}.example.org>",
                "MIME-Version: 1.0"]
        multipart = i % 5 == 3
        header_bytes = sum(len(h) + 2 for h in head) + 2 + (130 if multipart else 70)
        # A multipart message carries its text twice (plain and HTML): half each.
        budget = max(64, size - header_bytes - (260 if multipart else 0))
        paragraphs = _paragraphs(rng, budget // 2 if multipart else budget,
                                 f"About the {MARKER} plan: " if marked else "")
        text = "\r\n\r\n".join("\r\n".join(_wrap(p)) for p in paragraphs)
        if multipart:
            boundary = f"=_part_{i}_{rng.getrandbits(32):08x}"
            html = "".join("<p>" + "\r\n".join(_wrap(p)) + "</p>\r\n" for p in paragraphs)
            head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
            body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    f"Content-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
                    f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
                    f"Content-Transfer-Encoding: 7bit\r\n\r\n<html><body>\r\n{html}"
                    f"</body></html>\r\n--{boundary}--\r\n")
        else:
            head += ["Content-Type: text/plain; charset=utf-8",
                     "Content-Transfer-Encoding: 7bit"]
            body = text + "\r\n"
        out.append(("\r\n".join(head) + "\r\n\r\n" + body).encode())
    return out


def write_mbox(path: Path, messages: Sequence[bytes]) -> None:
    """An mbox file (for imaptest's APPENDs): From_ separators, LF line ends."""
    with open(path, "wb") as f:
        for message in messages:
            f.write(b"From sender@example.org Tue Jan  2 10:00:00 2024\n")
            f.write(message.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n\n")


# -- a raw IMAP client ----------------------------------------------------------------------------

class ImapFailure(RuntimeError):
    """A tagged NO or BAD, or the connection closed under a command."""


@dataclass
class Reply:
    status: str
    text: bytes
    untagged: int
    lines: list[bytes]


def _client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Imap:
    """One IMAP connection; reads responses from one buffer, skipping literals
    without copying them, so that the client is not what limits a FETCH figure."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._buf = bytearray()
        self._pos = 0
        self._n = 0

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False) -> Imap:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=_client_tls() if tls else None, limit=1 << 22)
        client = cls(reader, writer)
        greeting = await client._response(keep=True)
        if not greeting.startswith(b"* OK"):
            client.close()
            raise ImapFailure(f"greeting: {greeting[:200]!r}")
        return client

    async def _fill(self) -> None:
        if self._pos > 1 << 20:
            del self._buf[:self._pos]
            self._pos = 0
        data = await self._reader.read(1 << 20)
        if not data:
            raise ImapFailure("connection closed by the server")
        self._buf += data

    async def _response(self, keep: bool) -> bytes:
        """Consume one response: a line and every literal it announces. Returns its
        text without the literals when ``keep``, else its first 200 bytes."""
        parts: list[bytes] = []
        first = b""
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            while end < 0:
                await self._fill()
                end = self._buf.find(b"\r\n", self._pos)
            start = self._pos
            if not first:
                first = bytes(self._buf[start:min(end, start + 200)])
            if keep:
                parts.append(bytes(self._buf[start:end]))
            self._pos = end + 2
            if end > start and self._buf[end - 1] == 0x7D:  # "}": a literal follows
                opening = self._buf.rfind(b"{", start, end)
                size = int(self._buf[opening + 1:end - 1].rstrip(b"+"))
                while len(self._buf) - self._pos < size:
                    await self._fill()
                self._pos += size
                continue
            return b"".join(parts) if keep else first

    async def _until_tagged(self, tag: bytes, keep: bool, check: bool) -> Reply:
        count = 0
        lines: list[bytes] = []
        while True:
            response = await self._response(keep)
            if response.startswith(tag + b" "):
                status = response[len(tag) + 1:].split(b" ", 1)[0].decode()
                if check and status != "OK":
                    raise ImapFailure(response[:300].decode(errors="replace"))
                return Reply(status, response, count, lines)
            count += 1
            if keep:
                lines.append(response)

    def _tag(self) -> bytes:
        self._n += 1
        return b"t%d" % self._n

    async def command(self, text: str, *, keep: bool = False, check: bool = True) -> Reply:
        tag = self._tag()
        self._writer.write(tag + b" " + text.encode() + b"\r\n")
        return await self._until_tagged(tag, keep, check)

    async def login(self, user: str, password: str) -> None:
        await self.command(f'LOGIN "{user}" "{password}"')

    async def append(self, mailbox: str, message: bytes, *, check: bool = True) -> Reply:
        tag = self._tag()
        self._writer.write(tag + f" APPEND {mailbox} {{{len(message)}}}\r\n".encode())
        line = await self._response(keep=True)
        if not line.startswith(b"+"):
            raise ImapFailure(f"APPEND not continued: {line[:200]!r}")
        self._writer.write(message + b"\r\n")
        return await self._until_tagged(tag, False, check)

    async def idle(self) -> None:
        self._writer.write(self._tag() + b" IDLE\r\n")
        line = await self._response(keep=True)
        if not line.startswith(b"+"):
            raise ImapFailure(f"IDLE refused: {line[:200]!r}")

    async def logout(self) -> None:
        with contextlib.suppress(ImapFailure, OSError):
            await self.command("LOGOUT", check=False)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


# -- LMTP delivery -------------------------------------------------------------------------------

def dot_stuffed(message: bytes) -> bytes:
    body = message if message.endswith(b"\r\n") else message + b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    text = b""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        text += line
        if line[3:4] != b"-":
            return int(line[:3]), text


@dataclass
class Delivery:
    seconds: float
    delivered: int
    refused_421: int = 0
    other_failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


async def deliver(port: int, rcpt: str, prepared: Sequence[bytes], *, sessions: int,
                  spread: bool) -> Delivery:
    """Deliver every message of ``prepared`` (dot-stuffed) to ``rcpt`` over
    ``sessions`` concurrent LMTP sessions; a message refused with 421 (or cut off by
    a closed connection) is sent again on a new session."""
    pending = list(range(len(prepared)))
    pending.reverse()
    result = Delivery(0.0, 0)
    limit = 10 * len(prepared) + 100

    async def session(k: int) -> None:
        source = f"127.0.0.{2 + k % 250}" if spread else "127.0.0.1"
        while pending:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0))
            except OSError as exc:
                result.other_failures.append(f"connect: {exc}")
                await asyncio.sleep(0.2)
                if len(result.other_failures) > 100:
                    raise
                continue
            current: int | None = None
            try:
                code, _ = await _smtp_reply(reader)
                writer.write(b"LHLO bench.example.org\r\n")
                code, _ = await _smtp_reply(reader)
                while pending:
                    current = pending.pop()
                    for line in (b"MAIL FROM:<sender@example.org>\r\n",
                                 f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"):
                        writer.write(line)
                        code, text = await _smtp_reply(reader)
                        if code >= 400:
                            break
                    else:
                        writer.write(prepared[current])
                        code, text = await _smtp_reply(reader)
                    if code == 421:
                        raise ConnectionResetError(text.decode(errors="replace").strip())
                    if code >= 400:
                        result.other_failures.append(text.decode(errors="replace").strip())
                        writer.write(b"RSET\r\n")
                        await _smtp_reply(reader)
                    else:
                        result.delivered += 1
                    current = None
                writer.write(b"QUIT\r\n")
                with contextlib.suppress(ConnectionError):
                    await _smtp_reply(reader)
            except (ConnectionError, OSError) as exc:
                if "421" in str(exc):
                    result.refused_421 += 1
                else:
                    result.other_failures.append(f"session: {exc}")
                if current is not None:
                    pending.append(current)
                if result.refused_421 + len(result.other_failures) > limit:
                    raise RuntimeError(f"LMTP delivery keeps failing: {exc}") from exc
                await asyncio.sleep(0.1)
            finally:
                writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(session(k) for k in range(sessions)))
    result.seconds = time.perf_counter() - start
    return result


# -- the servers ---------------------------------------------------------------------------------

@dataclass
class Server:
    key: str
    imap_port: int
    imaps_port: int | None
    lmtp_port: int
    pids: Callable[[], list[int]]
    details: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.key]


def _letterlock_binary() -> str:
    beside = Path(sys.executable).parent / "letterlock"
    if beside.exists():
        return str(beside)
    found = shutil.which("letterlock")
    if found is None:
        raise SystemExit("letterlock not found: run with .venv/bin/python")
    return found


def _config_values(text: str, names: Sequence[str]) -> dict[str, str]:
    """Pick options out of `letterlock config`'s table."""
    out = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│|]", line)]
        if len(cells) > 3 and cells[1] in names:
            out[cells[1]] = cells[2]
    return out


@contextlib.asynccontextmanager
async def running_letterlock(root: Path, env_extra: dict[str, str],
                             ) -> AsyncIterator[Server]:
    home = root / "home"
    cli = [_letterlock_binary(), "--home", str(home)]
    subprocess.run([*cli, "init", "--domain", "example.test", "--region", "us-east:US"],
                   check=True, capture_output=True)
    for user in USERS:
        subprocess.run([*cli, "user", "add", user, "--region", "us-east", "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    ports = {name: dovecot.free_port() for name in
             ("IMAP_PORT", "IMAP_TLS_PORT", "SMTP_PORT", "SMTP_SUBMISSION_PORT",
              "SMTP_LMTP_PORT", "HTTP_PORT", "SIEVE_PORT")}
    env = dict(os.environ)
    env.update({f"LETTERLOCK_{name}": str(port) for name, port in ports.items()})
    env.update(env_extra)
    config = subprocess.run([*cli, "config"], capture_output=True, text=True, env=dict(
        env, COLUMNS="250")).stdout
    details: dict[str, object] = {"settings": _config_values(config, (
        "storage.fsync", "crypto.argon2_memory_kib", "crypto.argon2_iterations",
        "crypto.max_concurrent_kdf", "crypto.seal_processes", "crypto.key_cache_ttl_s",
        "imap.processes", "smtp.workers", "smtp.trusted_networks")), "env": env_extra,
        "home": str(home)}
    log = root / "letterlock.log"
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *cli, "serve", stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
    pids: list[int] = []
    try:
        for name in ("IMAP_PORT", "IMAP_TLS_PORT", "SMTP_LMTP_PORT"):
            await dovecot.wait_for_port(ports[name], 120, proc, log)
        yield Server("letterlock", ports["IMAP_PORT"], ports["IMAP_TLS_PORT"],
                     ports["SMTP_LMTP_PORT"], lambda: dovecot.process_tree(proc.pid),
                     details)
    finally:
        with contextlib.suppress(Exception):
            pids = dovecot.process_tree(proc.pid)
        await dovecot.terminate(proc, pids, timeout=30)


@contextlib.asynccontextmanager
async def running_dovecot_server(root: Path, key: str, scheme: str) -> AsyncIterator[Server]:
    variant: dovecot.Variant = "mail-crypt" if key == "dovecot-crypt" else "plain"
    users = [dovecot.User(user, PASSWORD) for user in USERS]
    async with dovecot.running_dovecot(root, users, variant=variant, tls=True,
                                       password_scheme=scheme) as instance:
        details: dict[str, object] = {
            "version": dovecot.version(), "mail_format": dovecot.MAIL_FORMAT,
            "password_scheme": scheme, "crypt_mode": instance.crypt_mode,
            "mail_fsync": await instance.setting("mail_fsync"),
            "dovecot_conf": instance.conf.read_text(), "notes": instance.notes}
        server = Server(key, instance.imap_port, instance.imaps_port, instance.lmtp_port,
                        instance.pids, details)
        server.details["instance"] = instance
        yield server


def instance_of(server: Server) -> dovecot.Dovecot | None:
    found = server.details.get("instance")
    return found if isinstance(found, dovecot.Dovecot) else None


# -- figures ------------------------------------------------------------------------------------

@dataclass
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool | None
    """None: no ratio (counts of errors, hit counts)."""
    values: dict[str, float | None] = field(default_factory=dict)


class Table:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []

    def put(self, key: str, label: str, unit: str, higher: bool | None, server: str,
            value: float | None) -> None:
        figure = self.figures.setdefault(key, Figure(key, label, unit, higher))
        figure.values[server] = value

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


def _ratio(figure: Figure, versus: str) -> float | None:
    mine, theirs = figure.values.get("letterlock"), figure.values.get(versus)
    if figure.higher_is_better is None or mine is None or not theirs:
        return None
    return mine / theirs


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("msg/s", "count", "KiB") and abs(value) >= 100:
        return f"{value:,.0f}"
    if unit == "ms" and value < 10:
        return f"{value:.2f}"
    if unit == "s" or value < 100:
        return f"{value:,.1f}" if unit != "count" else f"{value:,.0f}"
    return f"{value:,.0f}"


def _fmt_ratio(ratio: float) -> str:
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def render(table: Table, servers: Sequence[str]) -> str:
    head = ["figure", *(LABELS[s] for s in servers)]
    if "letterlock" in servers:
        if "dovecot" in servers:
            head.append("ratio vs plain")
        if "dovecot-crypt" in servers:
            head.append("ratio vs mail-crypt")
    rows = [head]
    for figure in table.figures.values():
        arrow = {True: " (higher better)", False: " (lower better)", None: ""}[
            figure.higher_is_better]
        row = [f"{figure.label}, {figure.unit}{arrow}"]
        row += [_fmt(figure.values.get(s), figure.unit) for s in servers]
        if "letterlock" in servers:
            for versus in ("dovecot", "dovecot-crypt"):
                if versus in servers:
                    ratio = _ratio(figure, versus)
                    row.append("-" if ratio is None else _fmt_ratio(ratio))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                      strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# -- the parts -------------------------------------------------------------------------------------

async def part_load(servers: Sequence[Server], table: Table, args: argparse.Namespace,
                    messages: Sequence[bytes]) -> None:
    prepared = [dot_stuffed(m) for m in messages]
    for server in servers:
        print(f"[lmtp] {server.label}: delivering {len(prepared)} messages", flush=True)
        done = await deliver(server.lmtp_port, MAIN, prepared, sessions=args.lmtp_sessions,
                             spread=not args.lmtp_one_address)
        table.put("lmtp", f"LMTP delivery, {len(prepared)} x {args.mean_size} B (mean), "
                  f"{args.lmtp_sessions} sessions", "msg/s", True, server.key, done.rate)
        table.put("lmtp_421", "LMTP 421 refusals during that load", "count", None,
                  server.key, done.refused_421)
        if done.other_failures:
            table.note(f"{server.label}: {len(done.other_failures)} LMTP failures, first: "
                       f"{done.other_failures[0]}")
        if done.delivered != len(prepared):
            table.note(f"{server.label}: {done.delivered} of {len(prepared)} delivered")
    if "lmtp" in args.parts and args.big_messages:
        big = [dot_stuffed(m) for m in make_messages(args.big_messages, 65536, seed=5, to=BIG)]
        for server in servers:
            print(f"[lmtp] {server.label}: delivering {len(big)} x 64 KiB", flush=True)
            done = await deliver(server.lmtp_port, BIG, big, sessions=args.lmtp_sessions,
                                 spread=not args.lmtp_one_address)
            table.put("lmtp_big", f"LMTP delivery, 64 KiB x {len(big)}", "msg/s", True,
                      server.key, done.rate)


async def check_sealing(servers: Sequence[Server], table: Table) -> None:
    """Dovecot mail-crypt must really have encrypted the stored mail."""
    for server in servers:
        instance = instance_of(server)
        if instance is None:
            continue
        hits, files = instance.storage_contains(MAIN, b"Message-ID: <")
        table.note(f"{server.label}: a message header found in {hits} of {files} mdbox "
                   "storage files")
        if instance.variant == "mail-crypt":
            if hits:
                table.note("WARNING: Dovecot mail-crypt stored plaintext")
            out = await instance.doveadm("fetch", "-u", MAIN, "text", "mailbox", "INBOX",
                                         "uid", "1", check=False)
            if "Password not available" in out or "Private key not available" in out:
                verdict = "fails: the key is locked"
            elif "Message-ID:" in out:
                verdict = "READ THE MAIL"
            else:
                verdict = f"failed otherwise: {out.strip()[:200]}"
            table.note(f"{server.label}: doveadm fetch without the password {verdict}")


async def _login_time(port: int, user: str) -> float:
    client = await Imap.connect(port)
    start = time.perf_counter()
    await client.login(user, PASSWORD)
    elapsed = time.perf_counter() - start
    await client.logout()
    return elapsed


async def part_login(servers: Sequence[Server], table: Table, args: argparse.Namespace) -> None:
    for server in servers:
        print(f"[login] {server.label}: {args.logins} logins", flush=True)
        times = [await _login_time(server.imap_port, MAIN) for _ in range(args.logins)]
        rest = sorted(times[1:]) or times
        table.put("login_first", "LOGIN, first of the user since start", "ms", False,
                  server.key, times[0] * 1000)
        table.put("login_median", "LOGIN, repeated, median", "ms", False, server.key,
                  statistics.median(rest) * 1000)
        table.put("login_p90", "LOGIN, repeated, p90", "ms", False, server.key,
                  rest[min(len(rest) - 1, int(len(rest) * 0.9))] * 1000)


async def storm(server: Server, count: int, wave_size: int) -> tuple[float, list[str]]:
    """Open ``count`` connections in waves of ``wave_size`` (each wave once accepted),
    each logging in as soon as it is greeted; seconds until every login is done."""
    clients: list[Imap] = []
    failures: list[str] = []

    async def connect() -> Imap | None:
        try:
            return await Imap.connect(server.imap_port)
        except (ImapFailure, OSError) as exc:
            failures.append(str(exc))
            return None

    async def log_in(client: Imap) -> None:
        try:
            await client.login(MAIN, PASSWORD)
        except (ImapFailure, OSError) as exc:
            failures.append(str(exc))

    logins: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for first in range(0, count, wave_size):
        wave = await asyncio.gather(*(connect() for _ in range(min(wave_size, count - first))))
        for client in wave:
            if client is not None:
                clients.append(client)
                logins.append(asyncio.create_task(log_in(client)))
    await asyncio.gather(*logins)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.logout() for c in clients))
    return elapsed, failures


async def part_storm(servers: Sequence[Server], table: Table, args: argparse.Namespace) -> None:
    for server in servers:
        print(f"[storm] {server.label}: {args.storm} reconnects", flush=True)
        await _login_time(server.imap_port, MAIN)  # the one earlier login
        elapsed, failures = await storm(server, args.storm, args.storm_wave)
        table.put("storm", f"{args.storm} reconnects all logged in", "s", False, server.key,
                  elapsed)
        table.put("storm_failed", "reconnects that failed", "count", None, server.key,
                  len(failures))
        if failures:
            table.note(f"{server.label}: storm failure: {failures[0][:200]}")


async def part_fetch(servers: Sequence[Server], table: Table, args: argparse.Namespace) -> None:
    queries = (("fetch_header", "(FLAGS BODY.PEEK[HEADER])"), ("fetch_body", "BODY.PEEK[]"),
               ("fetch_flags", "(FLAGS)"), ("fetch_envelope", "(ENVELOPE)"),
               ("fetch_bodystructure", "(BODYSTRUCTURE)"))
    for server in servers:
        print(f"[fetch] {server.label}: SELECT and FETCH", flush=True)
        selects = []
        for _ in range(args.select_rounds):
            client = await Imap.connect(server.imap_port)
            await client.login(MAIN, PASSWORD)
            start = time.perf_counter()
            reply = await client.command("SELECT INBOX", keep=True)
            selects.append(time.perf_counter() - start)
            await client.logout()
        exists = [line for line in reply.lines if line.endswith(b" EXISTS")]
        table.put("select", f"SELECT INBOX ({exists[0].split()[1].decode()} messages), "
                  f"median of {args.select_rounds} sessions" if exists else "SELECT INBOX",
                  "ms", False, server.key, statistics.median(selects) * 1000)
        client = await Imap.connect(server.imap_port)
        await client.login(MAIN, PASSWORD)
        await client.command("SELECT INBOX")
        for key, query in queries:
            best, count = float("inf"), 0
            for _ in range(1 + args.fetch_rounds):
                start = time.perf_counter()
                count = (await client.command(f"UID FETCH 1:* {query}")).untagged
                best = min(best, time.perf_counter() - start)
            if count != args.messages:
                table.note(f"{server.label}: UID FETCH {query} returned {count} messages")
            table.put(key, f"UID FETCH 1:* {query}", "msg/s", True, server.key, count / best)
        await client.logout()


async def part_search(servers: Sequence[Server], table: Table, args: argparse.Namespace,
                      ) -> None:
    hits: dict[str, dict[str, int]] = {}
    for server in servers:
        print(f"[search] {server.label}", flush=True)
        client = await Imap.connect(server.imap_port)
        await client.login(MAIN, PASSWORD)
        await client.command("SELECT INBOX")
        for key in args.search_keys.split(","):
            times = []
            for _ in range(max(2, args.search_rounds)):
                start = time.perf_counter()
                reply = await client.command(f'SEARCH {key} "{MARKER}"', keep=True)
                times.append(time.perf_counter() - start)
            found = sum(len(line.split()) - 2 for line in reply.lines
                        if line.startswith(b"* SEARCH"))
            hits.setdefault(key, {})[server.key] = found
            table.put(f"search_{key.lower()}_first", f'SEARCH {key} "{MARKER}", first',
                      "ms", False, server.key, times[0] * 1000)
            table.put(f"search_{key.lower()}", f'SEARCH {key} "{MARKER}", best repeat',
                      "ms", False, server.key, min(times[1:]) * 1000)
        await client.logout()
        for key in ("BODY", "TEXT", "SUBJECT", "FROM"):
            # A new session (letterlock: its sealed text index now stored, which
            # holds the header views SUBJECT and FROM compare too).
            client = await Imap.connect(server.imap_port)
            await client.login(MAIN, PASSWORD)
            await client.command("SELECT INBOX")
            start = time.perf_counter()
            await client.command(f'SEARCH {key} "{MARKER}"', keep=True)
            table.put(f"search_{key.lower()}_new_session",
                      f'SEARCH {key} "{MARKER}", first of a new session', "ms", False,
                      server.key, (time.perf_counter() - start) * 1000)
            await client.logout()
        home = server.details.get("home")
        if isinstance(home, str):
            table.note(text_index_size(Path(home)))
    for key, per_server in hits.items():
        table.note(f"SEARCH {key} hits: " + ", ".join(f"{LABELS[s]} {n}"
                                                      for s, n in per_server.items()))


def text_index_size(home: Path) -> str:
    """letterlock's sealed text index (SEARCH BODY/TEXT) as stored in its cells."""
    packs = size = 0
    for path in home.rglob("*"):
        if not path.is_file() or path.read_bytes()[:16] != b"SQLite format 3\x00":
            continue
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='text_packs'").fetchone():
                n, total = db.execute("SELECT count(*), coalesce(sum(length(data)), 0) "
                                      "FROM text_packs").fetchone()
                packs, size = packs + n, size + total
    return f"letterlock text index: {packs} sealed packs, {size / 1048576:.1f} MiB"


def find_imaptest() -> str | None:
    for candidate in (os.environ.get("IMAPTEST"), "/usr/local/bin/imaptest",
                      shutil.which("imaptest")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class MixedResult:
    counts: dict[str, int]
    errors: int
    sample_errors: list[str]


_IMAPTEST_ERROR = re.compile(r"^(Error|Panic|Fatal):", re.MULTILINE)


async def run_imaptest(binary: str, port: int, mbox: Path, clients: int, secs: int,
                       logout_zero: bool) -> MixedResult:
    args = [binary, "host=127.0.0.1", f"port={port}", f"user={MIXED}", f"pass={PASSWORD}",
            f"mbox={mbox}", f"clients={clients}", f"secs={secs}"]
    if logout_zero:
        args.append("logout=0")
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), secs + 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    counts: dict[str, int] = {}
    totals = text.rpartition("Totals:")[2].splitlines()
    header = next((line.split() for line in totals if line.strip().startswith("Logi")), [])
    numbers = [line.split() for line in totals
               if line.split() and all(tok.isdigit() for tok in line.split())]
    if header and numbers:
        counts = dict(zip(header, (int(n) for n in numbers[-1]), strict=False))
    errors = _IMAPTEST_ERROR.findall(text)
    samples = [line for line in text.splitlines() if _IMAPTEST_ERROR.match(line)][:3]
    if not counts:
        samples.insert(0, "no totals in imaptest output: " + text[-500:])
    return MixedResult(counts, len(errors), samples)


async def run_own_mixed(port: int, messages: Sequence[bytes], clients: int, secs: int,
                        logout_sometimes: bool, seed: int) -> MixedResult:
    """imaptest's kind of load, when imaptest is not there: each client keeps INBOX
    selected and picks commands at random until time is up."""
    counts: dict[str, int] = {}
    samples: list[str] = []
    errors = 0
    deadline = time.monotonic() + secs
    weights = [("FETCH-FLAGS", 30), ("FETCH-HEADER", 20), ("STORE", 15), ("APPEND", 15),
               ("EXPUNGE", 5), ("NOOP", 10)] + ([("LOGOUT", 5)] if logout_sometimes else [])
    names = [name for name, _ in weights]
    cumulative = [w for _, w in weights]

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    async def one(n: int) -> None:
        nonlocal errors
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < deadline:
            try:
                client = await Imap.connect(port)
                await client.login(MIXED, PASSWORD)
                count("LOGIN")
                reply = await client.command("SELECT INBOX", keep=True)
                count("SELECT")
                top = 1
                for line in reply.lines:
                    if m := re.search(rb"UIDNEXT (\d+)", line):
                        top = int(m.group(1))
                while time.monotonic() < deadline:
                    op = rng.choices(names, cum_weights=None, weights=cumulative)[0]
                    lo = rng.randint(1, max(1, top))
                    hi = min(top, lo + rng.randint(0, 20))
                    if op == "LOGOUT":
                        await client.command("LOGOUT")
                        count(op)
                        break
                    if op == "FETCH-FLAGS":
                        r = await client.command(f"UID FETCH {lo}:{hi} (FLAGS)", check=False)
                    elif op == "FETCH-HEADER":
                        r = await client.command(f"UID FETCH {lo}:{hi} (FLAGS "
                                                 "BODY.PEEK[HEADER])", check=False)
                    elif op == "STORE":
                        sign = rng.choice("+-")
                        r = await client.command(f"UID STORE {lo}:{hi} {sign}FLAGS "
                                                 "(\\Seen)", check=False)
                    elif op == "APPEND":
                        r = await client.append("INBOX", rng.choice(messages), check=False)
                        top += 1
                    elif op == "EXPUNGE":
                        await client.command(f"UID STORE {lo} +FLAGS (\\Deleted)",
                                             check=False)
                        r = await client.command("EXPUNGE", check=False)
                    else:
                        r = await client.command("NOOP", check=False)
                    count(op)
                    if r.status != "OK":
                        errors += 1
                        if len(samples) < 3:
                            samples.append(r.text[:200].decode(errors="replace"))
                client.close()
            except (ImapFailure, OSError) as exc:
                errors += 1
                if len(samples) < 3:
                    samples.append(str(exc)[:200])
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(n) for n in range(clients)))
    return MixedResult(counts, errors, samples)


async def part_mixed(servers: Sequence[Server], table: Table, args: argparse.Namespace,
                     messages: Sequence[bytes], root: Path) -> None:
    binary = find_imaptest() if args.mixed_client != "own" else None
    if binary is None:
        if args.mixed_client == "imaptest":
            raise SystemExit("imaptest not found ($IMAPTEST, /usr/local/bin/imaptest): "
                             "build it with bench/imaptest_build.sh")
        if args.mixed_client == "own":
            table.note("mixed load by this file's own asyncio client (--mixed-client own)")
        else:
            table.note("imaptest not found ($IMAPTEST, /usr/local/bin/imaptest; build it "
                       "with bench/imaptest_build.sh): imaptest figures skipped, mixed load "
                       "by this file's own asyncio client instead")
        preload = [dot_stuffed(m) for m in messages[:300]]
        for server in servers:
            await deliver(server.lmtp_port, MIXED, preload, sessions=4, spread=True)
    mbox = root / "imaptest.mbox"
    write_mbox(mbox, messages[:1000])
    runs = ((10, True), (50, False))
    for clients, logout_zero in runs:
        mode = "logout=0" if logout_zero else "default logout"
        tool = "imaptest" if binary else "own client"
        for server in servers:
            print(f"[mixed] {server.label}: {tool} {clients} clients {mode} "
                  f"{args.mixed_secs} s", flush=True)
            if binary:
                result = await run_imaptest(binary, server.imap_port, mbox, clients,
                                            args.mixed_secs, logout_zero)
                fetch = result.counts.get("Fetc")
                fetch2 = result.counts.get("Fet2")
                append = result.counts.get("Appe")
                logins = result.counts.get("Logi")
            else:
                result = await run_own_mixed(server.imap_port, messages[:1000], clients,
                                             args.mixed_secs, not logout_zero, clients)
                fetch = result.counts.get("FETCH-FLAGS")
                fetch2 = result.counts.get("FETCH-HEADER")
                append = result.counts.get("APPEND")
                logins = result.counts.get("LOGIN")
            prefix = f"{tool}, {clients} clients, {mode}, {args.mixed_secs} s"
            key = f"mixed_{clients}_{'l0' if logout_zero else 'ld'}"
            table.put(f"{key}_fetch", f"{prefix}: FETCH{' (Fetc)' if binary else ' flags'}",
                      "count", True, server.key, fetch)
            table.put(f"{key}_fetch2", f"{prefix}: FETCH{' (Fet2)' if binary else ' headers'}",
                      "count", True, server.key, fetch2)
            table.put(f"{key}_append", f"{prefix}: APPEND", "count", True, server.key, append)
            table.put(f"{key}_login", f"{prefix}: LOGIN", "count", True, server.key, logins)
            table.put(f"{key}_errors", f"{prefix}: errors", "count", None, server.key,
                      result.errors)
            for sample in result.sample_errors:
                table.note(f"{server.label} {prefix}: {sample}")


def tree_memory(pids: Sequence[int]) -> tuple[int, int, int]:
    """(RSS KiB, PSS KiB, processes) summed over ``pids``."""
    rss = pss = alive = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        alive += 1
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss, alive


async def _settle(server: Server, processes: int, timeout: float = 60) -> None:
    """Wait until the server's process count is back to ``processes`` (Dovecot's
    per-connection processes take a moment to exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(server.pids()) > processes:
        await asyncio.sleep(0.2)


async def idle_connections(server: Server, count: int, tls: bool,
                           ) -> tuple[list[Imap], list[str]]:
    """``count`` connections logged in as IDLE's user, INBOX selected, in IDLE."""
    port = server.imaps_port if tls else server.imap_port
    assert port is not None
    clients: list[Imap] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(64)

    async def one() -> None:
        async with gate:
            try:
                client = await Imap.connect(port, tls=tls)
                await client.login(IDLE, PASSWORD)
                await client.command("SELECT INBOX")
                await client.idle()
                clients.append(client)
            except (ImapFailure, OSError) as exc:
                failures.append(str(exc))

    await asyncio.gather(*(one() for _ in range(count)))
    return clients, failures


async def part_memory(servers: Sequence[Server], table: Table, args: argparse.Namespace,
                      ) -> None:
    for server in servers:
        await _login_time(server.imap_port, IDLE)
        for tls in (False, True):
            if tls and server.imaps_port is None:
                table.note(f"{server.label}: no TLS port, TLS idle memory skipped")
                continue
            print(f"[memory] {server.label}: {args.idle} idle connections"
                  f"{' over TLS' if tls else ''}", flush=True)
            await asyncio.sleep(1.0)
            rss0, pss0, procs0 = tree_memory(server.pids())
            clients, failures = await idle_connections(server, args.idle, tls)
            await asyncio.sleep(2.0)
            rss1, pss1, procs1 = tree_memory(server.pids())
            n = max(1, len(clients))
            kind = "TLS" if tls else "plain"
            table.put(f"idle_pss_{kind}", f"memory per idle connection ({kind}), PSS", "KiB",
                      False, server.key, (pss1 - pss0) / n)
            table.put(f"idle_rss_{kind}", f"memory per idle connection ({kind}), RSS", "KiB",
                      False, server.key, (rss1 - rss0) / n)
            table.note(f"{server.label} {kind}: {len(clients)} idle connections, processes "
                       f"{procs0} -> {procs1}, PSS +{(pss1 - pss0) / 1024:.0f} MiB, "
                       f"RSS +{(rss1 - rss0) / 1024:.0f} MiB"
                       + (f", {len(failures)} failed: {failures[0][:120]}" if failures
                          else ""))
            for client in clients:
                client.close()
            await _settle(server, procs0)


# -- the run -------------------------------------------------------------------------------------

def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "loadavg": _load(), "python": platform.python_version(),
            "letterlock_commit": commit,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds")}


async def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.monotonic()
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), load average "
          f"{info['loadavg']}, {info['timestamp']}", flush=True)
    print(f"generating {args.messages} messages of ~{args.size} bytes", flush=True)
    messages = make_messages(args.messages, args.size)
    args.mean_size = round(sum(map(len, messages)) / max(1, len(messages)))
    env_extra = dict(item.split("=", 1) for item in args.letterlock_env)
    if args.letterlock_imap_processes is not None:
        env_extra["LETTERLOCK_IMAP_PROCESSES"] = str(args.letterlock_imap_processes)
    table = Table()
    async with contextlib.AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ll-vs-dovecot-")))
        root.chmod(0o711)  # Dovecot's unprivileged processes pass through it
        servers: list[Server] = []
        for key in args.servers:
            print(f"starting {LABELS[key]}", flush=True)
            if key == "letterlock":
                servers.append(await stack.enter_async_context(
                    running_letterlock(root / key, env_extra)))
            else:
                servers.append(await stack.enter_async_context(
                    running_dovecot_server(root / key, key, args.dovecot_password_scheme)))
        for server in servers:
            shown = {k: v for k, v in server.details.items() if k not in HIDDEN}
            print(f"  {server.label}: IMAP {server.imap_port}, IMAPS {server.imaps_port}, "
                  f"LMTP {server.lmtp_port}; {shown}", flush=True)
        await part_load(servers, table, args, messages)
        await check_sealing(servers, table)
        if "memory" in args.parts:
            idle = [dot_stuffed(m) for m in make_messages(args.idle_messages, args.size,
                                                          seed=7, to=IDLE)]
            for server in servers:
                await deliver(server.lmtp_port, IDLE, idle, sessions=args.lmtp_sessions,
                              spread=True)
        if "login" in args.parts:
            await part_login(servers, table, args)
        if "storm" in args.parts:
            await part_storm(servers, table, args)
        if "fetch" in args.parts:
            await part_fetch(servers, table, args)
        if "search" in args.parts:
            await part_search(servers, table, args)
        if "mixed" in args.parts:
            await part_mixed(servers, table, args, messages, root)
        if "memory" in args.parts:
            await part_memory(servers, table, args)
        for server in servers:
            instance = instance_of(server)
            if instance is not None and instance.variant == "mail-crypt":
                hits, files = instance.index_contains(MAIN, MARKER.encode())
                table.note(f"{server.label}: the marker word (Subject) is in {hits} of "
                           f"{files} index/cache files (mail_crypt leaves the index "
                           "cache in plaintext)")
        for server in servers:
            server.details.pop("instance", None)
        print("stopping servers", flush=True)
    elapsed = time.monotonic() - started
    info["loadavg_end"] = _load()
    info["elapsed_s"] = round(elapsed)
    text = render(table, args.servers)
    print()
    print(f"letterlock vs Dovecot on {info['nproc']} CPUs ({info['cpu']}), "
          f"{info['timestamp']}, load average at start "
          f"{info['loadavg']}, at end {info['loadavg_end']}; letterlock "
          f"{info['letterlock_commit']}; run took {elapsed:.0f} s")
    print(f"{args.messages} messages of {args.mean_size} B on average; ratio = letterlock / "
          "Dovecot (for rates and counts above 1 is better, for times and memory below 1 is)")
    print(text)
    for server in servers:
        shown = {k: v for k, v in server.details.items() if k not in HIDDEN}
        print(f"{server.label}: {shown}")
    for note in table.notes:
        print(f"- {note}")
    if args.show_config:
        for server in servers:
            if "dovecot_conf" in server.details:
                print(f"\n# {server.label}: dovecot.conf\n{server.details['dovecot_conf']}")
    return {"machine": info, "args": {k: v for k, v in vars(args).items()},
            "servers": {s.key: s.details for s in servers},
            "figures": [dict(asdict(f), ratio_vs_plain=_ratio(f, "dovecot"),
                             ratio_vs_mail_crypt=_ratio(f, "dovecot-crypt"))
                        for f in table.figures.values()],
            "notes": table.notes, "table": text}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=10_000, help="INBOX size (messages)")
    p.add_argument("--size", type=int, default=1024, help="bytes per message (~; 65536 too)")
    p.add_argument("--parts", default=",".join(ALL_PARTS),
                   help="comma-separated subset of " + ",".join(ALL_PARTS))
    p.add_argument("--servers", default=",".join(SERVERS),
                   help="comma-separated subset of " + ",".join(SERVERS))
    p.add_argument("--letterlock-imap-processes", type=int, default=None,
                   help="sets LETTERLOCK_IMAP_PROCESSES for letterlock serve")
    p.add_argument("--letterlock-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for letterlock serve (repeatable)")
    p.add_argument("--dovecot-password-scheme", default="PLAIN",
                   help="Dovecot passdb scheme: PLAIN, SHA512-CRYPT, ARGON2ID, ...")
    p.add_argument("--lmtp-sessions", type=int, default=20)
    p.add_argument("--lmtp-one-address", action="store_true",
                   help="all LMTP sessions from 127.0.0.1 (meets per-address rate limits)")
    p.add_argument("--big-messages", type=int, default=1000,
                   help="64 KiB messages for the second LMTP figure (0: none)")
    p.add_argument("--logins", type=int, default=50)
    p.add_argument("--storm", type=int, default=500)
    p.add_argument("--storm-wave", type=int, default=100)
    p.add_argument("--select-rounds", type=int, default=5)
    p.add_argument("--fetch-rounds", type=int, default=3)
    p.add_argument("--search-rounds", type=int, default=2)
    p.add_argument("--search-keys", default="SUBJECT,FROM,BODY,TEXT",
                   help="the order of the search part's keys (BODY,... : BODY's first "
                        "search is the mailbox's first)")
    p.add_argument("--mixed-secs", type=int, default=20)
    p.add_argument("--mixed-client", choices=("auto", "imaptest", "own"), default="auto")
    p.add_argument("--idle", type=int, default=1000, help="idle connections per variant")
    p.add_argument("--idle-messages", type=int, default=1000)
    p.add_argument("--show-config", action="store_true",
                   help="print the generated dovecot.conf of each Dovecot variant")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.parts = [part for part in args.parts.split(",") if part]
    args.servers = [server for server in args.servers.split(",") if server]
    for part in args.parts:
        if part not in ALL_PARTS:
            p.error(f"unknown part {part!r}")
    for server in args.servers:
        if server not in SERVERS:
            p.error(f"unknown server {server!r}")
    for item in args.letterlock_env:
        if "=" not in item:
            p.error(f"--letterlock-env wants KEY=VALUE, not {item!r}")
    return args


def main() -> None:
    args = parse_args()
    if any(s.startswith("dovecot") for s in args.servers):
        try:
            dovecot.ensure_installed()
        except dovecot.DovecotUnavailable as exc:
            raise SystemExit(str(exc)) from None
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # asyncio.run then cancels the run and cleans up

    signal.signal(signal.SIGTERM, interrupted)
    try:
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temp files removed", file=sys.stderr)
        raise SystemExit(130) from None
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
