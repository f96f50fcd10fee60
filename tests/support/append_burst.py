"""Child process for the crash test: appends messages from many concurrent writers
and prints ``ACK <n>`` only after each append has returned (i.e. is durable)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from letterlock.app import open_app
from support.env import make_config


async def main(home: Path, address: str, writers: int, per_writer: int) -> None:
    async with open_app(make_config(home)) as app:
        ref = await app.accounts.resolve(address)

        async def writer(w: int) -> None:
            for i in range(per_writer):
                n = w * per_writer + i
                raw = (f"From: crash@example.test\r\nSubject: burst {n}\r\n\r\n"
                       + f"payload {n}\r\n" * 50).encode()
                await app.mailboxes.append(ref, "INBOX", raw)
                sys.stdout.write(f"ACK {n}\n")
                sys.stdout.flush()

        await asyncio.gather(*(writer(w) for w in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
