"""An MX worker process: ``python -m letterlock.smtp.worker --home H --port P``.

Started by :class:`letterlock.smtp.workers.MxWorkers` in ``letterlock serve`` when
``smtp.workers`` >= 2. It opens the application on the same HOME, listens on the
shared MX port, tells the main process about mailboxes it changed (so IDLE sees new
mail), prints a ready line, and stops on SIGTERM, SIGINT or when its stdin closes
(the main process is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import replace
from pathlib import Path

from letterlock import config as config_mod
from letterlock.app import open_app
from letterlock.services.accounts import certificates
from letterlock.services.mail.change_relay import ChangeSender
from letterlock.smtp.server import SmtpServer
from letterlock.smtp.workers import READY, run_dir


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def run_worker(config: config_mod.Config) -> None:
    async with open_app(config) as app:
        sender = ChangeSender(run_dir(config))
        app.hub.add_forwarder(sender)
        tls = await asyncio.to_thread(
            certificates.server_context, config.server.tls_cert, config.server.tls_key,
            config.control_dir / "tls", config.server.hostname)
        server = SmtpServer(app.delivery, app.accounts, None, config.smtp,
                            config.server.hostname, tls, bind=config.server.bind,
                            lmtp=False, mx_only=True, reuse_port=True)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(_stdin_closed())
        orphaned.add_done_callback(lambda _: stop.set())
        print(READY, flush=True)
        try:
            await stop.wait()
        finally:
            orphaned.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await orphaned
            await server.close()
            sender.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="letterlock MX worker process")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    config = config_mod.load(args.home, overrides={"smtp": {"port": args.port},
                                                   "server": {"bind": args.bind}})
    if config.crypto.seal_processes < 0:
        # The CPUs are taken by the MX processes themselves: each seals in-process
        # (the main process gets helpers only for the CPUs left over).
        config = replace(config, crypto=replace(config.crypto, seal_processes=0))
    asyncio.run(run_worker(config))


if __name__ == "__main__":
    main()
