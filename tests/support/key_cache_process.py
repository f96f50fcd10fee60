"""Another server process sharing HOME, for key cache tests:
``python key_cache_process.py HOME``.

It opens the application on HOME (cheap Argon2id, as every test), joins the peer
bus, prints ``ready PID`` and answers commands read from stdin, one per line:
``login ADDRESS PASSWORD`` prints ``ok N`` or ``fail N``, where N is the number of
Argon2id unlocks that login ran (0: served from the key cache); ``quit`` exits.
A login takes in the news waiting on the bus first (KeyCache.unlock drains it)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from letterlock.app import open_app, start_peers
from letterlock.crypto import keys
from letterlock.errors import AuthenticationFailed
from support.env import make_config


async def main(home: Path) -> None:
    runs = 0
    real = keys.unwrap_with_password

    def counting(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        nonlocal runs
        runs += 1
        return real(blob, password, key_id)

    keys.unwrap_with_password = counting  # type: ignore[assignment]
    async with open_app(make_config(home)) as app:
        stop = await start_peers(app)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("ready", os.getpid(), flush=True)
        try:
            while line := (await reader.readline()).decode().strip():
                command, *args = line.split(" ")
                if command == "login":
                    runs = 0
                    try:
                        await app.accounts.authenticate(args[0], " ".join(args[1:]))
                        print("ok", runs, flush=True)
                    except AuthenticationFailed:
                        print("fail", runs, flush=True)
                elif command == "quit":
                    break
        finally:
            await stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
