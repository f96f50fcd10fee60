"""`letterlock serve`: initialise if needed, build the front-ends on the application,
start the worker processes that share its MX and IMAP ports (letterlock/workers.py),
print where to connect, run until SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from letterlock import app as app_mod
from letterlock.app import (
    App,
    FrontEnd,
    Stopper,
    start_change_feeds,
    start_peers,
    tls_context,
)
from letterlock.config import Config
from letterlock.errors import AlreadyExists, ConfigError
from letterlock.http.metrics import start_metrics
from letterlock.http.server import start_http
from letterlock.imap.server import ImapServer
from letterlock.managesieve.server import start_managesieve
from letterlock.services.accounts import certificates, setup
from letterlock.services.operations.periodic import start_periodic
from letterlock.services.transparency import witnessing
from letterlock.sieve import EXTENSIONS
from letterlock.smtp import lmtp_socket
from letterlock.smtp.server import start_smtp
from letterlock.workers import FrontEndWorkers, Ports, ProcessPlan, check_port_unshared

DEMO_PASSWORD = "letterlock-demo"
DEMO_ACCOUNTS = (("alice@example.test", "us-east"), ("bob@example.test", "eu-dublin"))


def _shared_ports(config: Config, plan: ProcessPlan) -> Ports:
    """The ports the main process shares with its workers, checked free of any other
    listener first (see check_port_unshared)."""
    ports = Ports(config.server.bind, config.smtp.port, config.imap.port,
                  config.imap.tls_port)
    shared = ([ports.mx] if plan.mx > 1 else []) + \
        ([ports.imap, ports.imaps] if plan.imap > 1 else [])
    for port in shared:
        if port == 0:
            raise ConfigError("a port shared by several processes cannot be 0 "
                              "(set it, or smtp.workers / imap.processes to 1)")
        check_port_unshared(ports.bind, port)
    return ports


def _front_ends(plan: ProcessPlan, ports: Ports) -> list[FrontEnd]:
    """What `serve` starts, in order (stopped in reverse): the peer bus first, so the
    listeners' changes reach the workers; the workers last, once every port is held."""

    async def start_imap(app: App) -> Stopper:
        server = ImapServer(app.accounts, app.mailboxes, app.config.imap,
                            tls_context(app.config))
        await server.start(ports.bind, ports.imap, ports.imaps, reuse_port=plan.imap > 1)
        return server.close

    async def start_sieve(app: App) -> Stopper:
        if not app.config.sieve.port:
            return _nothing
        server = await start_managesieve(app.accounts, app.filters, EXTENSIONS,
                                         app.config.sieve, app.config.imap,
                                         tls_context(app.config), ports.bind)
        return server.close

    async def start_mx_and_submission(app: App) -> Stopper:
        return await start_smtp(app, tls_context(app.config), reuse_port=plan.mx > 1)

    async def start_workers(app: App) -> Stopper:
        workers = FrontEndWorkers(app.config.home, plan, ports)
        await workers.start()
        return workers.stop

    starters: list[FrontEnd] = [start_peers, start_change_feeds, start_mx_and_submission,
                                start_imap, start_sieve, start_http, start_metrics,
                                _start_legal_ticks, _start_witnessing]
    if plan.workers:
        starters.append(start_workers)
    return starters


async def _nothing() -> None:
    return None


async def _start_legal_ticks(app: App) -> Stopper:
    return start_periodic(app.legal.tick, app.config.legal.tick_interval_s, "legal tick")


async def _start_witnessing(app: App) -> Stopper:
    """Checkpoints to the witnesses of HOME/control/witnesses, when there are any."""
    control = app.config.control_dir
    if not witnessing.read_witnesses(control / witnessing.WITNESSES_FILE):
        return _nothing
    return start_periodic(
        lambda: witnessing.submit_round_async(control, app.config.server.hostname),
        witnessing.INTERVAL_S, "witness round")


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
    # First: the worker processes inherit where metrics are counted.
    stop_observing = app_mod.start_observing(config, main=True)
    try:
        await _serve(config, demo=demo)
    finally:
        stop_observing()


async def _serve(config: Config, *, demo: bool) -> None:
    if not app_mod.is_initialised(config):
        created = await app_mod.initialise(config, setup.InitOptions())
        print(f"initialised {config.home}: " + ", ".join(created))
    plan = ProcessPlan.from_config(config)
    ports = _shared_ports(config, plan)
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
            lmtp_path = lmtp_socket.socket_path(config.home, config.smtp.lmtp_socket)
            if lmtp_path is not None and lmtp_socket.fits(lmtp_path):
                print(f"  LMTP               unix:{lmtp_path}")
            print(f"  SMTP submission    {bind}:{config.smtp.submission_port} (STARTTLS)")
            print(f"  IMAP               {bind}:{config.imap.port} (STARTTLS)")
            print(f"  IMAPS              {bind}:{config.imap.tls_port}")
            if config.sieve.port:
                print(f"  ManageSieve        {bind}:{config.sieve.port} (STARTTLS)")
            print(f"  HTTP               http://{bind}:{config.http.port}/")
            cert, _key, self_signed = certificates.in_use(
                config.server.tls_cert, config.server.tls_key, config.control_dir / "tls")
            print(f"  TLS certificate    {cert.absolute()}"
                  + (" (self-signed: set server.tls_cert and tls_key)" if self_signed else ""))
            if config.http.metrics_port:
                print(f"  metrics            http://{config.http.metrics_bind}:"
                      f"{config.http.metrics_port}/metrics")
            if plan.workers:
                print(f"  processes          main + {plan.workers} worker(s): MX in "
                      f"{plan.mx}, IMAP in {plan.imap}")
            helpers = len(app.mailboxes.sealer.helper_pids) if app.mailboxes.sealer else 0
            if helpers:
                print(f"  sealing helpers    {helpers} process(es)")
            for address, region in demo_accounts:
                print(f"  demo login         {address} / {DEMO_PASSWORD}  (region {region})")
            print("Stop with Ctrl-C.", flush=True)

        await app_mod.run_until_signalled(app, _front_ends(plan, ports), ready)
