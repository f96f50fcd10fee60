"""Region move and HTTP API throughput.

    .venv/bin/python bench/move.py [--messages N] [--size BYTES] [--requests N] [--dir DIR]

Move: an account with N messages (fsync on) is moved from us-east to eu-dublin and
back; prints messages/s and sealed MB/s copied, including deleting the old copy
(without the fixed settle wait a real move adds, MOVE_SETTLE_S).
HTTP: requests/s for an operator listing legal matters over a real socket with a
bearer token (one SHA-256 lookup per request), and with HTTP Basic (one Argon2id
derivation per request, at the production cost settings).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from letterlock import config as config_mod
from letterlock.app import initialise, open_app
from letterlock.http.server import HttpServer
from letterlock.services.accounts.setup import InitOptions

PASSWORD = "benchmark password"


def message(size: int, n: int) -> bytes:
    head = f"From: bench@example.test\r\nSubject: bench {n}\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head))


async def bench_move(home: Path, count: int, size: int) -> None:
    config = config_mod.load(home, env={"LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "8192",
                                        "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1"})
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        ref, _ = await app.accounts.create("bench@example.test", "us-east", PASSWORD)
        inbox = await app.cells.get("us-east").store.get_mailbox(ref.record.id, "INBOX")
        sealed = 0
        for start in range(0, count, 256):
            items = [await app.mailboxes.seal_message(ref, message(size, n), inbox.id)
                     for n in range(start, min(count, start + 256))]
            sealed += sum(len(blob) + len(m.summary) for m, blob in items)
            await app.mailboxes.append_sealed(ref, items)
        for source, target in (("us-east", "eu-dublin"), ("eu-dublin", "us-east")):
            t0 = time.perf_counter()
            await app.accounts.move("bench@example.test", target, settle_s=0)
            elapsed = time.perf_counter() - t0
            print(f"move {source} -> {target}: {count} messages of {size} B in "
                  f"{elapsed:.2f} s = {count / elapsed:,.0f} messages/s, "
                  f"{sealed / elapsed / 1e6:,.1f} MB/s sealed")


async def bench_http(home: Path, requests: int) -> None:
    config = config_mod.load(home)  # production Argon2id settings
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.operators.add("bench", "auditor", PASSWORD)
        server = HttpServer(app)
        port = await server.start("127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                token = (await c.post("/api/operator/tokens",
                                      auth=("bench", PASSWORD))).json()["token"]
                headers = {"Authorization": f"Bearer {token}"}
                for label, kwargs, n in (
                        ("bearer token", {"headers": headers}, requests),
                        ("HTTP Basic (Argon2id)", {"auth": ("bench", PASSWORD)},
                         max(4, requests // 50))):
                    t0 = time.perf_counter()
                    for _ in range(n):
                        r = await c.get("/api/legal/matters", **kwargs)
                        assert r.status_code == 200
                    elapsed = time.perf_counter() - t0
                    print(f"GET /api/legal/matters, {label}: {n} sequential requests, "
                          f"{n / elapsed:,.1f} requests/s, {elapsed / n * 1000:.2f} ms each")
        finally:
            await server.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await bench_move(Path(tmp) / "move", args.messages, args.size)
        await bench_http(Path(tmp) / "http", args.requests)


if __name__ == "__main__":
    asyncio.run(main())
