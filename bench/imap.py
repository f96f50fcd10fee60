"""IMAP server figures: logins per second, time to SELECT (and STATUS) an N-message
mailbox, full-mailbox FETCH of N messages (headers, and full bodies) in messages per
second, resident memory per idle connection (plain, implicit TLS, STARTTLS), and the
memory left behind by a burst of concurrent SELECTs of the N-message mailbox.

    .venv/bin/python bench/imap.py [--messages 10000] [--idle 2000] [--logins 20]
                                   [--parts logins,select,fetch,idle,burst]
                                   [--fetch-modes plain,tls]
                                   [--idle-modes plain,tls,starttls] [--idle-fetch 0]
                                   [--burst 200] [--burst-gates 1,8,200]

The server runs in a child process (the real composition root on a temp HOME, SQLite
cells, sealed store, one process: ImapServer itself, not ``serve``'s IMAP workers);
this process is the client, over loopback sockets. Logins use the production Argon2id
settings; the idle test uses a cheap setting so 2,000 logins finish quickly (the key
derivation holds no memory after login).

- idle: for each mode, a fresh server; ``--idle`` connections, each logged in, with
  INBOX selected and in IDLE, opened in two halves. Printed: the growth of the
  server's resident set size over all of them per connection, and the marginal KiB per
  connection over the second half (which excludes one-time growth: allocator arenas,
  first-use caches), each read ``--settle`` seconds after the connections opened.
  ``tls`` is the implicit-TLS port, ``starttls`` the plain port upgraded with
  STARTTLS before LOGIN. ``--idle-fetch N``: each connection first
  fetches N messages whole, as a client that syncs and then idles (what a connection
  keeps after moving data counts, not only after logging in).
- burst: for each gate, a fresh server; ``--burst`` connections log in (one at a
  time: the key cache makes every login after the first cheap), then all SELECT the
  N-message INBOX with at most ``gate`` SELECTs in flight, and stay selected. Printed:
  RSS growth per connection right after the burst and a few seconds later (the memory
  the listings took should be given back, leaving what a selected connection keeps),
  and after every connection closed (should be back near the start).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "benchmark password"
USER = "bench@example.test"
IDLE_USER = "idle@example.test"
"""Created by the cheap-KDF server (a key is unwrapped with the Argon2 settings it was
wrapped with, so the production-settings account cannot log in cheaply)."""
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


# -- server side (child process) -------------------------------------------------------

async def serve(home: Path, messages: int, fast_kdf: bool) -> None:
    """Run the server for USER (production KDF) or IDLE_USER (cheap KDF), each with
    ``messages`` messages in INBOX."""
    from letterlock import config as config_mod
    from letterlock.app import initialise, open_app
    from letterlock.imap.server import ImapServer
    from letterlock.services.accounts.certificates import server_context
    from letterlock.services.accounts.setup import InitOptions

    env = dict(os.environ)
    if fast_kdf:
        env.update(LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB="1024",
                   LETTERLOCK_CRYPTO_ARGON2_ITERATIONS="1")
    config = config_mod.load(home, env=env)
    if not (home / "control").exists():
        await initialise(config, InitOptions())
    user = IDLE_USER if fast_kdf else USER
    async with open_app(config) as app:
        try:
            ref, _ = await app.accounts.create(user, "us-east", PASSWORD)
        except Exception:
            ref = await app.accounts.resolve(user)
        box = await app.mailboxes.mailbox_for_delivery(ref, "INBOX")
        session = await app.accounts.authenticate(user, PASSWORD)
        have = (await app.mailboxes.get_mailbox(session, "INBOX")).messages
        batch = []
        for i in range(have, messages):
            batch.append(await app.mailboxes.seal_message(ref, sample(i), box))
            if len(batch) == 500:
                await app.mailboxes.append_sealed(ref, batch)
                batch = []
        if batch:
            await app.mailboxes.append_sealed(ref, batch)
        tls = server_context("", "", home / "bench-tls", "localhost")
        server = ImapServer(app.accounts, app.mailboxes, config.imap, tls)
        await server.start("127.0.0.1", 0, 0)
        print(f"READY {server.port} {server.tls_port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close()


def sample(i: int) -> bytes:
    head = (f"From: Sender {i} <sender{i}@example.org>\r\nTo: {USER}\r\n"
            f"Subject: benchmark message number {i}\r\n"
            f"Date: Tue, 2 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{i}.bench@example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    return head + b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 40


# -- client side -----------------------------------------------------------------------

def _client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class Ports:
    plain: int
    tls: int

    def connect(self, mode: str) -> Awaitable[Client]:
        """A connection in ``mode``: plain, tls (implicit) or starttls."""
        if mode == "tls":
            return Client.connect(self.tls, tls=True)
        return Client.connect(self.plain, starttls=mode == "starttls")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.n = 0

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False, starttls: bool = False,
                      ) -> Client:
        context = _client_tls() if tls or starttls else None
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=2**24,
                                             ssl=context if tls else None)
        await r.readuntil(b"\n")
        client = cls(r, w)
        if starttls:
            assert context is not None
            await client.command("STARTTLS")
            await w.start_tls(context)
        return client

    async def command(self, text: str) -> int:
        """Send a command; return the number of untagged responses."""
        self.n += 1
        tag = f"b{self.n}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        count = 0
        while True:
            line = await self.reader.readuntil(b"\n")
            while (m := _LITERAL.search(line)) is not None:
                await self.reader.readexactly(int(m.group(1)))
                line = await self.reader.readuntil(b"\n")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return count
            count += 1

    async def close(self) -> None:
        self.writer.close()


async def start_server(home: Path, messages: int, fast_kdf: bool,
                       ) -> tuple[asyncio.subprocess.Process, Ports]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(home), "--messages", str(messages),
        *(["--fast-kdf"] if fast_kdf else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("server did not start")
        if line.startswith(b"READY "):
            _, plain, tls = line.split()
            return proc, Ports(int(plain), int(tls))


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bench_logins(port: int, count: int) -> float:
    async def one() -> None:
        c = await Client.connect(port)
        await c.command(f'LOGIN "{USER}" "{PASSWORD}"')
        await c.command("LOGOUT")
        await c.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - start)


async def bench_fetch(ports: Ports, mode: str, query: str, rounds: int = 1,
                      ) -> tuple[int, float]:
    c = await ports.connect(mode)
    await c.command(f'LOGIN "{USER}" "{PASSWORD}"')
    await c.command("SELECT INBOX")
    best = float("inf")
    count = 0
    for _ in range(rounds):
        start = time.perf_counter()
        count = await c.command(f"UID FETCH 1:* {query}")
        best = min(best, time.perf_counter() - start)
    await c.command("LOGOUT")
    await c.close()
    return count, best


async def bench_select(port: int, rounds: int = 7) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of SELECT INBOX, and of STATUS INBOX (UNSEEN SIZE),
    over ``rounds`` repetitions on one logged-in connection."""
    c = await Client.connect(port)
    await c.command(f'LOGIN "{USER}" "{PASSWORD}"')
    out: dict[str, tuple[float, float]] = {}
    for label, command in (("SELECT", "SELECT INBOX"),
                           ("STATUS (UNSEEN SIZE)", "STATUS INBOX (UNSEEN SIZE)")):
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await c.command(command)
            times.append(time.perf_counter() - start)
        times.sort()
        out[label] = (times[0], times[len(times) // 2])
    await c.command("LOGOUT")
    await c.close()
    return out


async def bench_idle(ports: Ports, mode: str, pid: int, count: int, fetch: int = 0,
                     settle_s: float = 3.0) -> tuple[int, int, float]:
    """Open ``count`` idle connections in two halves, each fetching the first
    ``fetch`` messages whole before IDLE. Returns (opened, RSS growth over all of them
    in KiB, marginal KiB per connection over the second half). The marginal figure
    excludes one-time growth (allocator arenas, first-use caches)."""
    base = rss_kib(pid)
    clients: list[Client] = []
    gate = asyncio.Semaphore(64)

    async def one() -> None:
        async with gate:
            c = await ports.connect(mode)
            await c.command(f'LOGIN "{IDLE_USER}" "{PASSWORD}"')
            await c.command("SELECT INBOX")
            if fetch:
                await c.command(f"UID FETCH 1:{fetch} BODY.PEEK[]")
            c.writer.write(b"i IDLE\r\n")
            line = await c.reader.readuntil(b"\n")
            assert line.startswith(b"+"), line
            clients.append(c)

    half = count // 2
    await asyncio.gather(*(one() for _ in range(half)))
    await asyncio.sleep(settle_s)
    middle = rss_kib(pid)
    await asyncio.gather(*(one() for _ in range(count - half)))
    await asyncio.sleep(settle_s)
    end = rss_kib(pid)
    for c in clients:
        c.writer.write(b"DONE\r\n")
        await c.close()
    return len(clients), end - base, (end - middle) / max(1, count - half)


@dataclass(frozen=True)
class Burst:
    opened: int
    before: int
    """RSS (KiB) with every connection logged in, before the SELECTs."""
    after: int
    """RSS right after the last SELECT answered."""
    settled: int
    """RSS a few seconds later, the connections still selected."""
    closed: int
    """RSS after every connection closed."""
    start: int
    """RSS before any connection opened."""
    seconds: float


async def bench_burst(ports: Ports, pid: int, count: int, gate_size: int,
                      settle_s: float = 5.0) -> Burst:
    """``count`` connections log in, then SELECT INBOX with at most ``gate_size``
    SELECTs in flight; RSS is read before, right after, after ``settle_s`` and after
    the connections closed."""
    warm = await ports.connect("plain")  # first-use growth is not the burst's
    await warm.command(f'LOGIN "{USER}" "{PASSWORD}"')
    await warm.command("SELECT INBOX")
    await warm.command("LOGOUT")
    await warm.close()
    await asyncio.sleep(1.0)
    start = rss_kib(pid)
    clients = []
    for _ in range(count):
        c = await ports.connect("plain")
        await c.command(f'LOGIN "{USER}" "{PASSWORD}"')
        clients.append(c)
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    gate = asyncio.Semaphore(gate_size)

    async def select(c: Client) -> None:
        async with gate:
            await c.command("SELECT INBOX")

    began = time.perf_counter()
    await asyncio.gather(*(select(c) for c in clients))
    seconds = time.perf_counter() - began
    after = rss_kib(pid)
    await asyncio.sleep(settle_s)
    settled = rss_kib(pid)
    for c in clients:
        await c.command("LOGOUT")
        await c.close()
    await asyncio.sleep(2.0)
    return Burst(len(clients), before, after, settled, rss_kib(pid), start, seconds)


async def main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="ll-imap-bench-") as tmp:
        home = Path(tmp) / "home"
        print(f"populating {args.messages} messages...", flush=True)
        parts = set(args.parts.split(","))
        proc, ports = await start_server(home, args.messages, fast_kdf=False)
        try:
            if "logins" in parts:
                rate = await bench_logins(ports.plain, args.logins)
                print(f"logins/s (Argon2id production settings): {rate:.1f}")
            if "select" in parts:
                for label, (best, median) in (await bench_select(ports.plain)).items():
                    print(f"{label} of a {args.messages}-message INBOX: best "
                          f"{best * 1000:.0f} ms, median {median * 1000:.0f} ms")
            for mode, (label, query) in () if "fetch" not in parts else (
                    (mode, fetch) for mode in args.fetch_modes.split(",") for fetch in (
                        ("header FETCH", "(UID FLAGS RFC822.SIZE INTERNALDATE "
                                         "BODY.PEEK[HEADER])"),
                        ("envelope FETCH", "(UID FLAGS ENVELOPE BODYSTRUCTURE)"),
                        ("full-body FETCH", "(UID FLAGS BODY.PEEK[])"))):
                count, seconds = await bench_fetch(ports, mode, query, rounds=2)
                print(f"{label} of {count} messages ({mode}): {seconds:.2f} s "
                      f"({count / seconds:,.0f} msg/s)", flush=True)
        finally:
            await stop_server(proc)
        for gate_size in [int(g) for g in args.burst_gates.split(",")] \
                if "burst" in parts else []:
            proc, ports = await start_server(home, args.messages, fast_kdf=False)
            try:
                b = await bench_burst(ports, proc.pid, args.burst, gate_size)
            finally:
                await stop_server(proc)
            n = max(1, b.opened)
            print(f"burst of {b.opened} SELECTs of a {args.messages}-message INBOX, "
                  f"{gate_size} at a time ({b.seconds:.1f} s): server RSS per connection "
                  f"(from logged in) +{(b.after - b.before) / n:.1f} KiB right after, "
                  f"+{(b.settled - b.before) / n:.1f} KiB 5 s later; all closed: "
                  f"{(b.closed - b.start) / 1024:+.1f} MiB from before the logins "
                  f"(RSS {b.start / 1024:.1f} -> {b.after / 1024:.1f} -> "
                  f"{b.settled / 1024:.1f} -> {b.closed / 1024:.1f} MiB)", flush=True)
        for mode in args.idle_modes.split(",") if "idle" in parts else []:
            proc, ports = await start_server(home, args.idle_messages, fast_kdf=True)
            try:
                opened, grown, marginal = await bench_idle(ports, mode, proc.pid, args.idle,
                                                           args.idle_fetch, args.settle)
            finally:
                await stop_server(proc)
            fetched = (f", {args.idle_fetch} messages fetched whole" if args.idle_fetch
                       else "")
            print(f"{opened} idle {mode} connections (logged in, {args.idle_messages}-"
                  f"message INBOX selected{fetched}, IDLE): "
                  f"server RSS +{grown / 1024:.1f} MiB = {grown / max(1, opened):.1f} KiB "
                  f"per connection overall, {marginal:.1f} KiB per added connection",
                  flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--idle", type=int, default=2_000)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--idle-messages", type=int, default=1_000)
    parser.add_argument("--fetch-modes", default="plain,tls",
                        help="comma-separated connection kinds for the FETCH figures")
    parser.add_argument("--idle-modes", default="plain,tls,starttls",
                        help="comma-separated connection kinds for the idle figure")
    parser.add_argument("--idle-fetch", type=int, default=0,
                        help="messages each idle connection fetches whole before IDLE "
                             "(a client that syncs, then idles)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between opening idle connections and reading RSS "
                             "(the server trims its heap 2 s after a burst: imap/heap.py)")
    parser.add_argument("--burst", type=int, default=200,
                        help="connections in the SELECT burst")
    parser.add_argument("--burst-gates", default="1,8,200",
                        help="comma-separated SELECTs in flight at once, one burst each")
    parser.add_argument("--parts", default="logins,select,fetch,idle,burst",
                        help="comma-separated figures to measure")
    parser.add_argument("--serve", type=Path)
    parser.add_argument("--fast-kdf", action="store_true")
    parsed = parser.parse_args()
    if parsed.serve is not None:
        asyncio.run(serve(parsed.serve, parsed.messages, parsed.fast_kdf))
    else:
        asyncio.run(main(parsed))
