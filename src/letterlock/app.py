"""The composition root: the one place that builds storage, services and front-ends
from the configuration, and owns their start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.config import Config
from letterlock.crypto.keys import KdfParams
from letterlock.errors import AlreadyExists, ConfigError, LetterlockError, NotInitialised
from letterlock.imap import views as imap_views
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.services.accounts import certificates
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.accounts.disabled import DisabledAccounts
from letterlock.services.accounts.kdf_queue import KdfRunner
from letterlock.services.accounts.key_cache import KeyCache, KeyCacheSettings
from letterlock.services.accounts.login_backoff import LoginBackoff
from letterlock.services.accounts.operators import OperatorService
from letterlock.services.accounts.quotas import QuotaService
from letterlock.services.accounts.setup import InitOptions, write_config_file
from letterlock.services.cells import Cell, Cells, GroupCommitter
from letterlock.services.legal.approval import parse_four_eyes
from letterlock.services.legal.impact import LegalImpact
from letterlock.services.legal.matters import LegalService
from letterlock.services.mail import dkim_keys
from letterlock.services.mail.addresses import AddressService
from letterlock.services.mail.change_relay import ChangeRelay
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.filters.running import FilterRunner
from letterlock.services.mail.filters.scripts import FilterLimits, FilterService
from letterlock.services.mail.mailbox import MailboxService
from letterlock.services.mail.notify import ChangeHub
from letterlock.services.mail.queue_key import load_server_key
from letterlock.services.mail.sealing import SealPool, default_processes
from letterlock.services.mail.spam_learning import SpamLearner
from letterlock.services.operations import logs, metrics
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.peers import PeerBus
from letterlock.storage.address_contracts import AddressBook, AddressDirectory
from letterlock.storage.addresses_postgres import PostgresAddressBook, PostgresAddressDirectory
from letterlock.storage.addresses_sqlite import (
    ADDRESSES_DB,
    SqliteAddressBook,
    SqliteAddressDirectory,
)
from letterlock.storage.contracts import BlobStore, CellStore, ControlStore
from letterlock.storage.files import FileBlobStore
from letterlock.storage.legal_sqlite import LegalStore
from letterlock.storage.models import Region
from letterlock.storage.operators_sqlite import OperatorStore
from letterlock.storage.postgres import PostgresCellStore, PostgresControlStore
from letterlock.storage.s3 import S3BlobStore
from letterlock.storage.sieve_contracts import SieveStore
from letterlock.storage.sieve_postgres import PostgresSieveStore
from letterlock.storage.sieve_sqlite import SIEVE_DB, SqliteSieveStore
from letterlock.storage.sqlite import SqliteCellStore
from letterlock.storage.sqlite_control import SqliteControlStore
from letterlock.storage.unavailable import UnavailableStore
from letterlock.workers import ProcessPlan

CONTROL_DB = "control.sqlite3"
CELL_DB = "cell.sqlite3"


INITIALISED_MARKER = "initialised"


def is_initialised(config: Config) -> bool:
    return ((config.control_dir / INITIALISED_MARKER).exists()
            or (config.control_dir / CONTROL_DB).exists())


def open_control(config: Config) -> ControlStore:
    """The directory and operator settings: SQLite under HOME/control, or, for
    front-ends on several hosts, the PostgreSQL database named by
    ``storage.postgres_url`` with ``{region}`` replaced by ``control``."""
    if config.storage.postgres_url:
        return PostgresControlStore(config.storage.postgres_url.replace("{region}", "control"))
    return SqliteControlStore(config.control_dir / CONTROL_DB, fsync=config.storage.fsync)


def open_addresses(config: Config, accounts: AccountService, control: ControlStore,
                   audit: AuditSink) -> AddressService:
    """Aliases, groups and catch-alls: names and routes beside the directory, each
    region's links to its accounts in that region (SQLite file beside its cell, or
    its PostgreSQL database)."""
    separator = config.smtp.subaddress_separator
    if len(separator) > 1 or separator in ('@', '"', " ", "<", ">", "\\"):
        raise ConfigError(f"smtp.subaddress_separator must be one character other than "
                          f"@, quote, space, <, > or backslash (or empty), not {separator!r}")
    url = config.storage.postgres_url
    directory: AddressDirectory = (
        PostgresAddressDirectory(url.replace("{region}", "control")) if url else
        SqliteAddressDirectory(config.control_dir / ADDRESSES_DB, fsync=config.storage.fsync))

    def book(region_id: str) -> AddressBook:
        if url:
            return PostgresAddressBook(url.replace("{region}", region_id))
        return SqliteAddressBook(config.region_dir(region_id) / ADDRESSES_DB,
                                 fsync=config.storage.fsync)

    return AddressService(directory, book, control, accounts, audit, separator=separator)


def open_filters(config: Config, quotas: QuotaService) -> FilterService:
    """Each region's filter scripts beside its mail (SQLite file or its PostgreSQL
    database); delivery copies of active scripts under the server key."""
    url = config.storage.postgres_url

    def store(region_id: str) -> SieveStore:
        if url:
            return PostgresSieveStore(url.replace("{region}", region_id))
        return SqliteSieveStore(config.region_dir(region_id) / SIEVE_DB,
                                fsync=config.storage.fsync)

    opts = config.sieve
    limits = FilterLimits(opts.max_script_bytes, opts.max_account_bytes, opts.max_scripts,
                          opts.max_redirects)
    return FilterService(store, load_server_key(config.control_dir), limits=limits,
                         quotas=quotas)


def _open_audit(config: Config) -> AuditSink:
    # Every event recorded is also a log line (without its details).
    return logs.open_logged_audit(config.control_dir / "audit")


def open_cell(config: Config, region: Region) -> Cell:
    """The region's cell: SQLite and files under HOME by default; PostgreSQL when
    ``storage.postgres_url`` is set, S3 when ``storage.s3_endpoint`` is set."""
    root = config.region_dir(region.id)
    opts = config.storage
    try:
        store: CellStore = (PostgresCellStore(opts.postgres_url.replace("{region}", region.id))
                            if opts.postgres_url else
                            SqliteCellStore(root / CELL_DB, fsync=opts.fsync))
        blobs: BlobStore = (S3BlobStore(opts.s3_bucket.replace("{region}", region.id),
                                        endpoint=opts.s3_endpoint,
                                        access_key=opts.s3_access_key,
                                        secret_key=opts.s3_secret_key, region=opts.s3_region)
                            if opts.s3_endpoint else
                            FileBlobStore(root / "blobs", fsync=opts.fsync))
    except (LetterlockError, OSError) as exc:
        # One damaged region must not stop the others: its accounts get temporary
        # failures (storage/unavailable.py) until the operator repairs or restores it.
        event(LogEvent.REGION_UNAVAILABLE, region=region.id, reason=str(exc))
        stand_in = UnavailableStore(region.id, str(exc))
        store, blobs = cast(CellStore, stand_in), cast(BlobStore, stand_in)
    return Cell(region, store, blobs, GroupCommitter(store, blobs, opts.group_commit_max))


@dataclass
class App:
    """Everything a front-end or command needs, built once."""

    config: Config
    control: ControlStore
    cells: Cells
    audit: AuditSink
    kdf: KdfRunner
    hub: ChangeHub
    accounts: AccountService
    mailboxes: MailboxService
    delivery: DeliveryService
    legal: LegalService
    operators: OperatorService
    peers: PeerBus
    """The other processes of this server (see services/peers.py); joined by
    :func:`start_peers` in long-running processes, broadcast to from any."""
    addresses: AddressService
    """Aliases, groups, catch-alls, domain aliases and send-as grants."""
    quotas: QuotaService
    """Limits of what each account may keep, and its usage."""
    legal_impact: LegalImpact
    """Every stored matter decided again under other policies (read-only)."""
    filters: FilterService
    """Each account's filter scripts (Sieve), sealed in its region."""

    async def add_region(self, region: Region, actor: str = "operator") -> None:
        await self.control.add_region(region)
        self.cells.add(open_cell(self.config, region))
        await self.audit.record(AuditEvent(EventType.ADMIN_REGION_ADDED, actor,
                                           _now(), details=(("region", region.id),
                                                            ("country", region.country))))

    async def add_domain(self, name: str, actor: str = "operator") -> None:
        """Host ``name`` and make its DKIM signing key (`domain show` prints the DNS
        records to publish)."""
        await self.control.add_domain(name)
        await asyncio.to_thread(dkim_keys.ensure_key, self.config.control_dir, name)
        await self.audit.record(AuditEvent(EventType.ADMIN_DOMAIN_ADDED, actor, _now(),
                                           details=(("domain", name),)))


def _now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def open_app(config: Config, *, create: bool = False) -> AsyncIterator[App]:
    """Build the application on ``config.home``. Raises NotInitialised unless the
    home is initialised or ``create`` is set."""
    if not create and not is_initialised(config):
        raise NotInitialised(f"{config.home} is not initialised: run `letterlock init`")
    config.control_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        control = open_control(config)
        stack.push_async_callback(control.close)
        cells = Cells([open_cell(config, r) for r in await control.list_regions()])
        stack.push_async_callback(cells.close)
        audit = _open_audit(config)
        closer = getattr(audit, "close", None)
        if closer is not None:
            stack.push_async_callback(closer)
        kdf = KdfRunner(config.crypto.max_concurrent_kdf, config.crypto.kdf_queue_per_client)
        stack.callback(kdf.close)
        # Memory only; cleared (its encrypted keys overwritten) at shutdown; shared
        # with the other processes of this server over the peer bus (below).
        key_cache = KeyCache(KeyCacheSettings(config.crypto.key_cache_ttl_s,
                                              config.crypto.key_cache_max_uses,
                                              config.crypto.key_cache_max_entries))
        stack.callback(key_cache.close)
        params = KdfParams(config.crypto.argon2_memory_kib, config.crypto.argon2_iterations,
                           config.crypto.argon2_lanes)
        hub = ChangeHub()
        # Changes made here reach the other processes of a running server (and theirs
        # reach here once start_peers joined the bus).
        peers = PeerBus(config.run_dir)
        stack.callback(peers.close)
        key_cache.attach(peers)
        ChangeRelay(hub, peers)
        accounts = AccountService(control, cells, kdf, params, audit, key_cache=key_cache,
                                  backoff=LoginBackoff(config.crypto.login_delay_max_ms / 1000))
        accounts.use_disabled_list(DisabledAccounts(config.control_dir))
        # Worker processes (smtp.workers, imap.processes) are event loops of their
        # own: the CPUs they take are not free for sealing helpers.
        sealer = SealPool(default_processes(config.crypto.seal_processes,
                                            ProcessPlan.from_config(config).event_loops),
                          config.crypto.chunk_bytes)
        stack.push_async_callback(sealer.close)
        quotas = QuotaService(control, cells)
        mailboxes = MailboxService(cells, hub, config.crypto.chunk_bytes, sealer,
                                   digest_views=imap_views.VIEWS,
                                   hot_digest_bytes=config.imap.hot_digests_mib * 1024 * 1024,
                                   quotas=quotas)
        stack.callback(mailboxes.close)
        stack.callback(mailboxes.digests.clear)
        stack.push_async_callback(mailboxes.digests.flush)
        stack.callback(mailboxes.text_index.clear)
        stack.push_async_callback(mailboxes.text_index.flush)
        addresses = open_addresses(config, accounts, control, audit)
        stack.push_async_callback(addresses.close)
        accounts.add_address_hooks(addresses)
        filters = open_filters(config, quotas)
        stack.push_async_callback(filters.close)
        accounts.add_address_hooks(filters)  # scripts go with the account
        quotas.add_usage_source(filters.stored_bytes)  # and count toward its quota
        delivery = DeliveryService(control, accounts, mailboxes,
                                   postmaster=config.smtp.postmaster.strip(),
                                   addresses=addresses,
                                   filters=FilterRunner(filters,
                                                        mailbox_names=mailboxes.mailbox_names))
        legal_store = LegalStore(config.control_dir, fsync=config.storage.fsync)
        stack.push_async_callback(legal_store.close)
        engine = PolicyEngine(load_profile(config.legal.policy_dir or config.legal.profile),
                              load_jurisdictions())
        legal = LegalService(legal_store, control, cells, accounts, delivery, audit, engine,
                             config.legal.operator_country, config.control_dir / "legal",
                             contact=config.legal.contact,
                             four_eyes=parse_four_eyes(config.legal.four_eyes))
        # Holds keep sealed data of expunged mail; open matters block delete and move.
        mailboxes.add_retention_hook(legal.retain)
        # Owners moving mail into and out of Junk teach rspamd (spam.rspamd = on).
        learner = SpamLearner.from_config(config.spam, mailboxes)
        if learner is not None:
            mailboxes.add_filing_hook(learner)
            stack.push_async_callback(learner.close)
        accounts.add_lifecycle_guard(legal.check_account_free)
        operator_store = OperatorStore(config.control_dir, fsync=config.storage.fsync)
        stack.push_async_callback(operator_store.close)
        operators = OperatorService(operator_store, kdf, params, audit)
        yield App(config, control, cells, audit, kdf, hub, accounts, mailboxes, delivery,
                  legal, operators, peers, addresses, quotas,
                  LegalImpact(legal_store, control, config.legal.operator_country), filters)


async def initialise(config: Config, options: InitOptions) -> list[str]:
    """Create regions and domains that do not exist yet; returns what was created."""
    config.home.mkdir(parents=True, exist_ok=True)
    write_config_file(config.home, options)
    created: list[str] = []
    async with open_app(config, create=True) as app:
        for region_id, country in options.regions:
            with contextlib.suppress(AlreadyExists):
                await app.add_region(Region(region_id, country))
                created.append(f"region {region_id} ({country})")
        for domain in options.domains:
            with contextlib.suppress(AlreadyExists):
                await app.add_domain(domain)
                created.append(f"domain {domain}")
    (config.control_dir / INITIALISED_MARKER).touch()
    return created


Stopper = Callable[[], Awaitable[int | None]]
"""Stops what a front-end started; a listener's returns how many client connections
it ended."""
FrontEnd = Callable[[App], Awaitable[Stopper]]


def start_observing(config: Config, *, main: bool) -> Callable[[], None]:
    """Structured log lines on stderr (``log.*``) and, with ``http.metrics_port``, the
    Prometheus counters of this process; ``main``: the process that serves
    ``/metrics`` and starts the others (they inherit where to count). Returns the
    function that stops both."""
    undo = [logs.configure(config)]
    if config.http.metrics_port:
        undo.append(metrics.enable(config.run_dir, main=main))

    def stop() -> None:
        for step in reversed(undo):
            step()

    return stop


def tls_context(config: Config) -> ssl.SSLContext:
    """The server certificate every listener of every process uses: the configured
    files, or the self-signed pair under HOME/control/tls (made on first use)."""
    return certificates.server_context(config.server.tls_cert, config.server.tls_key,
                                       config.control_dir / "tls", config.server.hostname)


async def start_peers(app: App) -> Stopper:
    """Join the other processes of this server on the peer bus (until stopped)."""
    app.peers.start()

    async def stop() -> None:
        app.peers.close()

    return stop


async def start_change_feeds(app: App) -> Stopper:
    """Cells on PostgreSQL tell every process on every host about changes
    (LISTEN/NOTIFY): wake this process's watchers with them, so IDLE sees mail
    delivered by other processes. (Not forwarded on the peer bus: every process of
    this server follows the feed itself.)"""
    tasks = [asyncio.create_task(cell.store.forward_changes(app.hub.notify_from_elsewhere))
             for cell in app.cells if isinstance(cell.store, PostgresCellStore)]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return stop


async def run_until_signalled(app: App, starters: list[FrontEnd],
                              ready: Callable[[], None]) -> None:
    """Start every front-end, call ``ready``, and stop cleanly on SIGINT/SIGTERM: one
    ``server:process:stopped`` line says how many connections were ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stoppers: list[Stopper] = []
    closed = 0
    try:
        for start in starters:
            try:
                stoppers.append(await start(app))
            except OSError as exc:  # typically a port another program holds
                raise ConfigError(f"cannot start a listener: {exc}") from exc
        ready()
        event(LogEvent.SERVER_STARTED, role="main", home=str(app.config.home))
        await stop.wait()
    finally:
        for stopper in reversed(stoppers):
            closed += await stopper() or 0
        event(LogEvent.SERVER_STOPPED, role="main", connections=closed)

