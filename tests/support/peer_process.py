"""A process on the peer bus, for tests: ``python -m support.peer_process RUN_DIR``.

It joins the bus of RUN_DIR, prints ``ready PID``, prints ``got PAYLOAD`` for every
``t`` datagram it receives, and reads commands from stdin: ``send PAYLOAD``
(broadcast, then print ``sent``), ``quit`` (leave the bus and exit)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from letterlock.services.peers import PeerBus


async def main(run_dir: Path) -> None:
    bus = PeerBus(run_dir)
    bus.subscribe(b"t", lambda payload: print("got", payload.decode(), flush=True))
    bus.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", os.getpid(), flush=True)
    try:
        while line := (await reader.readline()).decode().strip():
            command, _, arg = line.partition(" ")
            if command == "send":
                bus.broadcast(b"t", arg.encode())
                print("sent", flush=True)
            elif command == "quit":
                break
    finally:
        bus.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
