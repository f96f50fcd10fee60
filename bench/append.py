"""Durable sealed appends per second, beside the raw write+fsync rate of the same disk.

    .venv/bin/python bench/append.py [--messages N] [--dir DIR]

For 1 KiB and 64 KiB messages and 1, 8 and 32 concurrent writers, every append goes
through the real mailbox service with the default configuration: seal to the account
key (in the sealing helper processes when the machine has more than one CPU), group
commit (blobs flushed together, metadata in one SQLite transaction with
synchronous=FULL), acknowledge. The baseline writes equally sized plain files, one
fsync per file, in one thread, as many files as appends. It is measured right before
and right after each sealed run, and the ratio is taken against the faster of the
two, because this disk's flush rate drifts by a factor of two over minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from letterlock import config as config_mod
from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.mail.sealing import default_processes

SIZES = (1024, 64 * 1024)
WRITERS = (1, 8, 32)
PASSWORD = "benchmark password"


def message(size: int, n: int) -> bytes:
    head = f"From: bench@example.test\r\nSubject: bench {n}\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head))


def raw_fsync_rate(directory: Path, size: int, count: int) -> float:
    directory.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(size)
    start = time.perf_counter()
    for i in range(count):
        fd = os.open(directory / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    shutil.rmtree(directory)
    return count / elapsed


async def sealed_rate(home: Path, size: int, writers: int, count: int) -> float:
    env = {"LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "8192",
           "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1"}
    config = config_mod.load(home, env=env)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        ref, _ = await app.accounts.create("bench@example.test", "us-east", PASSWORD)
        per_writer = max(1, count // writers)
        bodies = [message(size, n) for n in range(per_writer * writers)]

        async def writer(w: int) -> None:
            for i in range(per_writer):
                await app.mailboxes.append(ref, "INBOX", bodies[w * per_writer + i])

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - start
    shutil.rmtree(home)
    return per_writer * writers / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000,
                        help="appends per measurement (default 2000)")
    parser.add_argument("--dir", type=Path, default=Path("."),
                        help="directory on the disk to measure (default: here)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="letterlock-bench-", dir=args.dir))
    try:
        print(f"disk under {work.resolve()}, {args.messages} appends per run, "
              f"{default_processes(-1)} sealing helper process(es), {os.cpu_count()} CPUs")
        print(f"{'size':>7} {'writers':>7} {'sealed/s':>10} {'raw/s before/after':>18} "
              f"{'ratio':>7}")
        for size in SIZES:
            for writers in WRITERS:
                before = raw_fsync_rate(work / "raw", size, args.messages)
                rate = asyncio.run(sealed_rate(work / "home", size, writers, args.messages))
                after = raw_fsync_rate(work / "raw", size, args.messages)
                raw = max(before, after)
                print(f"{size // 1024:>5}Ki {writers:>7} {rate:>10.0f} "
                      f"{f'{before:.0f} / {after:.0f}':>18} {rate / raw:>7.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
