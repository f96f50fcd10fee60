"""A front-end worker process: ``python -m letterlock.worker --home H --bind B
[--mx-port P] [--imap-port P --imaps-port P]``.

Started by :class:`letterlock.workers.FrontEndWorkers` in ``letterlock serve``. It
opens the application on the same HOME, joins the peer bus (mailbox changes to and
from the other processes), follows the PostgreSQL change feed of cells kept there,
listens on the shared MX and/or IMAP ports with the main process's TLS certificate,
prints a ready line, and stops on SIGTERM, SIGINT or when its stdin closes (the main
process is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from letterlock import config as config_mod
from letterlock.app import (
    App,
    Stopper,
    open_app,
    start_change_feeds,
    start_observing,
    start_peers,
    tls_context,
)
from letterlock.imap.server import ImapServer
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail import dkim_keys
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.mail.rspamd import SpamFilter
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.operations.tls_reports import TlsReportIntake
from letterlock.smtp.server import SmtpServer
from letterlock.storage.tls_reports_sqlite import TlsReportStore
from letterlock.workers import READY


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


class _HandOff:
    """A worker's filters (redirect, vacation) queue mail here: spooled, then sent by
    the main process's queue (OutboundQueue.hand_off)."""

    def __init__(self, queue: OutboundQueue) -> None:
        self._queue = queue

    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes, *, sign_for: str | None = None) -> str:
        return await self._queue.hand_off(sender, mail_from, recipients, message,
                                          sign_for=sign_for)


async def _hand_filter_mail_to_main(app: App, stack: contextlib.AsyncExitStack) -> None:
    if app.delivery.filters is None:
        return
    config = app.config
    queue = OutboundQueue(config.home, app.delivery, app.accounts,
                          dkim_keys.DkimKeys(config.control_dir),
                          OutboundSettings.from_config(config.smtp, config.server.hostname),
                          peers=app.peers)
    await queue.open()  # never started: the main process sends
    stack.push_async_callback(queue.close)
    app.delivery.filters.attach_outbound(_HandOff(queue))


async def run_worker(config: config_mod.Config, *, mx: bool, imap: bool) -> None:
    async with open_app(config) as app, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(await start_peers(app))
        stack.push_async_callback(await start_change_feeds(app))
        tls = await asyncio.to_thread(tls_context, config)
        listeners: list[Stopper] = []

        async def close_listeners() -> int:
            """Stop every listener (once); how many connections they ended."""
            closed = 0
            while listeners:
                closed += await listeners.pop()() or 0
            return closed

        stack.push_async_callback(close_listeners)  # also if a start below fails
        if mx:
            await _hand_filter_mail_to_main(app, stack)
            reports = None  # smtp.tls_report_inbox: TLS reports arrive here too
            if config.smtp.tls_report_inbox:
                store = TlsReportStore(config.control_dir, fsync=config.storage.fsync)
                stack.push_async_callback(store.close)
                reports = TlsReportIntake(store, config.smtp.tls_report_inbox,
                                          app.delivery.hosted_domains)
            smtp = SmtpServer(app.delivery, app.accounts, None, config.smtp,
                              config.server.hostname, tls, bind=config.server.bind,
                              lmtp=False, mx_only=True, reuse_port=True,
                              spam=SpamFilter.from_config(config.spam), tls_reports=reports)
            await smtp.start()
            listeners.append(smtp.close)
        if imap:
            imap_server = ImapServer(app.accounts, app.mailboxes, config.imap, tls)
            await imap_server.start(config.server.bind, config.imap.port,
                                    config.imap.tls_port, reuse_port=True)
            listeners.append(imap_server.close)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(_stdin_closed())
        orphaned.add_done_callback(lambda _: stop.set())
        print(READY, flush=True)
        event(LogEvent.SERVER_STARTED, role="worker", mx=mx, imap=imap)
        try:
            await stop.wait()
        finally:
            event(LogEvent.SERVER_STOPPED, role="worker", connections=await close_listeners())
            orphaned.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await orphaned


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="letterlock front-end worker process")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--mx-port", type=int, help="serve MX on this shared port")
    parser.add_argument("--imap-port", type=int, help="serve IMAP on this shared port")
    parser.add_argument("--imaps-port", type=int, help="serve IMAPS on this shared port")
    args = parser.parse_args(argv)
    if args.mx_port is None and args.imap_port is None:
        parser.error("nothing to serve: give --mx-port and/or --imap-port")
    overrides: dict[str, dict[str, Any]] = {"server": {"bind": args.bind}}
    if args.mx_port is not None:
        overrides["smtp"] = {"port": args.mx_port}
    if args.imap_port is not None:
        overrides["imap"] = {"port": args.imap_port,
                             **({"tls_port": args.imaps_port}
                                if args.imaps_port is not None else {})}
    config = config_mod.load(args.home, overrides=overrides)
    if config.crypto.seal_processes < 0:
        # The CPUs are taken by the event loops themselves: a worker seals in-process
        # (the main process gets helpers only for the CPUs left over).
        config = replace(config, crypto=replace(config.crypto, seal_processes=0))
    stop_observing = start_observing(config, main=False)
    try:
        asyncio.run(run_worker(config, mx=args.mx_port is not None,
                               imap=args.imap_port is not None))
    finally:
        stop_observing()


if __name__ == "__main__":
    main()
