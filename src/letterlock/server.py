"""`letterlock serve`: initialise if needed, build the front-ends on the application,
print where to connect, run until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from letterlock import app as app_mod
from letterlock.app import App
from letterlock.config import Config
from letterlock.errors import AlreadyExists
from letterlock.http.server import start_http
from letterlock.imap.server import ImapServer
from letterlock.services.accounts import certificates, setup
from letterlock.services.operations.periodic import start_periodic
from letterlock.smtp.server import start_smtp
from letterlock.storage.postgres import PostgresCellStore

Stopper = Callable[[], Awaitable[None]]

DEMO_PASSWORD = "letterlock-demo"
DEMO_ACCOUNTS = (("alice@example.test", "us-east"), ("bob@example.test", "eu-dublin"))


def tls_context(config: Config) -> ssl.SSLContext:
    return certificates.server_context(config.server.tls_cert, config.server.tls_key,
                                       config.control_dir / "tls", config.server.hostname)


async def _start_imap(app: App) -> Stopper:
    server = ImapServer(app.accounts, app.mailboxes, app.config.imap, tls_context(app.config))
    await server.start(app.config.server.bind, app.config.imap.port, app.config.imap.tls_port)
    return server.close


async def _start_smtp(app: App) -> Stopper:
    return await start_smtp(app, tls_context(app.config))


async def _start_change_feeds(app: App) -> Stopper:
    """Cells on PostgreSQL tell every process about changes (LISTEN/NOTIFY): forward
    them to this process's change hub so IDLE sees mail delivered by other processes."""
    tasks = [asyncio.create_task(cell.store.forward_changes(app.hub.notify))
             for cell in app.cells if isinstance(cell.store, PostgresCellStore)]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return stop


async def _start_legal_ticks(app: App) -> Stopper:
    return start_periodic(app.legal.tick, app.config.legal.tick_interval_s, "legal tick")


def _demo_message(sender: str, to: str, subject: str, body: str) -> bytes:
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: <{abs(hash((sender, to, subject)))}@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


async def create_demo(app: App) -> list[tuple[str, str]]:
    """Demo accounts (one per default region) with a little mail; idempotent."""
    created = []
    for address, region in DEMO_ACCOUNTS:
        if region not in app.cells:
            continue
        with contextlib.suppress(AlreadyExists):
            ref, _code = await app.accounts.create(address, region, DEMO_PASSWORD,
                                                   actor="demo")
            other = next(a for a, _ in DEMO_ACCOUNTS if a != address)
            await app.delivery.deliver(_demo_message(
                other, address, "Welcome to letterlock",
                f"Your mailbox lives only in region {region}, sealed to your key.\r\n"
                "The operator cannot read it."), [ref])
            await app.delivery.deliver(_demo_message(
                other, address, "Lunch?", "Are you free on Thursday?"), [ref])
        created.append((address, region))
    return created


async def serve(config: Config, *, demo: bool = False) -> None:
    if not app_mod.is_initialised(config):
        created = await app_mod.initialise(config, setup.InitOptions())
        print(f"initialised {config.home}: " + ", ".join(created))
    async with app_mod.open_app(config) as app:
        demo_accounts = await create_demo(app) if demo else []
        if app.mailboxes.sealer is not None:
            await app.mailboxes.sealer.start()

        bind = config.server.bind

        def ready() -> None:
            print(f"letterlock is running, data in {config.home.resolve()}")
            print(f"  SMTP (MX)          {bind}:{config.smtp.port}")
            if config.smtp.lmtp_port:
                print(f"  LMTP               {bind}:{config.smtp.lmtp_port}")
            print(f"  SMTP submission    {bind}:{config.smtp.submission_port} (STARTTLS)")
            print(f"  IMAP               {bind}:{config.imap.port} (STARTTLS)")
            print(f"  IMAPS              {bind}:{config.imap.tls_port}")
            print(f"  HTTP               http://{bind}:{config.http.port}/")
            helpers = len(app.mailboxes.sealer.helper_pids) if app.mailboxes.sealer else 0
            if helpers:
                print(f"  sealing helpers    {helpers} process(es)")
            for address, region in demo_accounts:
                print(f"  demo login         {address} / {DEMO_PASSWORD}  (region {region})")
            print("Stop with Ctrl-C.", flush=True)

        await app_mod.run_until_signalled(
            app, [_start_change_feeds, _start_smtp, _start_imap, start_http,
                  _start_legal_ticks], ready)
