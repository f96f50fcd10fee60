"""SMTP delivery benchmark: durable deliveries per second through the MX listener.

Runs `letterlock serve` on a throwaway HOME (fsync on, as in production), drives it
with Postfix's smtp-source (20 parallel sessions, 2,000 messages, 1 KiB then 64 KiB),
checks every message landed, and prints the rate beside this disk's raw
write+fsync rate measured in the same run, so the figure can be judged.

    .venv/bin/python bench/smtp.py [--messages 2000] [--sessions 20] [--sizes 1024,65536]
                                   [--workers N]

"server CPU ms/msg" is the CPU time of the server (all its threads and MX worker
processes) per message: on a shared, loaded machine it says more than the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from letterlock import config as config_mod
from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions

PASSWORD = "benchmark password"
RECIPIENT = "alice@example.test"
# A login costs one cheap Argon2 derivation here; it is not what is measured.
ENV = {"LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "1024", "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1"}


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def raw_fsync_rate(directory: Path, size: int, count: int) -> float:
    """Files of ``size`` bytes written and fsynced one by one (with the directory), per
    second: what one durable write per message would cost on this disk."""
    data = os.urandom(size)
    start = time.perf_counter()
    for i in range(count):
        path = directory / f"raw{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        dfd = os.open(directory, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    elapsed = time.perf_counter() - start
    for i in range(count):
        (directory / f"raw{i}").unlink()
    return count / elapsed


def start_server(home: Path, workers: int) -> tuple[subprocess.Popen[str], int]:
    mx, sub, imap, imaps, http = free_ports(5)
    env = {**os.environ, **ENV, "LETTERLOCK_SMTP_WORKERS": str(workers)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "letterlock", "--home", str(home), "serve", "--smtp-port",
         str(mx), "--submission-port", str(sub), "--imap-port", str(imap), "--imaps-port",
         str(imaps), "--http-port", str(http)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Stop with Ctrl-C"):
            # Read its log lines as journald would (a full pipe would stall it).
            threading.Thread(target=_discard, args=(proc.stdout,), daemon=True).start()
            return proc, mx
    raise SystemExit("serve did not start")


def _discard(stream: IO[str]) -> None:
    for _ in stream:
        pass


async def count_stored(config: config_mod.Config) -> int:
    async with open_app(config) as app:
        session = await app.accounts.authenticate(RECIPIENT, PASSWORD)
        box = await app.mailboxes.get_mailbox(session, "INBOX")
        return box.messages


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User+system CPU so far of a process and of its running children (the MX
    workers), all threads included (Linux /proc)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total = 0
    for p in pids:
        try:
            fields = _stat(p)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_size(source: str, size: int, messages: int, sessions: int,
             reuse: bool, workers: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="letterlock-bench-") as tmp:
        home = Path(tmp) / "home"
        config = config_mod.load(home, env=ENV)
        asyncio.run(initialise(config, InitOptions()))

        async def add_user() -> None:
            async with open_app(config) as app:
                await app.accounts.create(RECIPIENT, "us-east", PASSWORD)

        asyncio.run(add_user())
        proc, port = start_server(home, workers)
        try:
            cpu = cpu_seconds(proc.pid)
            start = time.perf_counter()
            reuse_flag = ["-d"] if reuse else []
            done = subprocess.run([source, *reuse_flag, "-s", str(sessions), "-m",
                                   str(messages), "-l", str(size), "-f", "bench@remote.test",
                                   "-t", RECIPIENT, f"127.0.0.1:{port}"],
                                  capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid) - cpu
            if done.returncode != 0:
                raise SystemExit(f"smtp-source failed: {done.stdout}{done.stderr}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        stored = asyncio.run(count_stored(config))
        return messages / elapsed, cpu * 1000 / messages, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--sizes", default="1024,65536")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="smtp.workers: processes accepting MX connections "
                             "(default: one per CPU, the throughput configuration)")
    args = parser.parse_args()
    source = shutil.which("smtp-source")
    if source is None:
        raise SystemExit("smtp-source not found: install postfix (see .ci/run)")
    print(f"smtp-source: {args.sessions} sessions, {args.messages} messages, one recipient,"
          f" fsync on, smtp.workers={args.workers}, {os.cpu_count()} CPUs,"
          f" load average {os.getloadavg()[0]:.1f}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="letterlock-raw-",
                                         dir=tempfile.gettempdir()) as raw_dir:
            raw = raw_fsync_rate(Path(raw_dir), size, 300)
        print(f"{size:>6} B: raw write+fsync on this disk {raw:6.0f}/s", flush=True)
        for reuse in (False, True):
            rate, cpu_ms, stored = run_size(source, size, args.messages, args.sessions, reuse,
                                            args.workers)
            mode = "one connection per message" if not reuse else "connections reused (-d)"
            print(f"         {rate:6.0f} durable deliveries/s, server CPU {cpu_ms:4.2f} ms/msg, "
                  f"stored {stored}/{args.messages}  [{mode}]", flush=True)
            if stored != args.messages:
                raise SystemExit("not every accepted message was stored")


if __name__ == "__main__":
    main()
