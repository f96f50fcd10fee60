"""Typed configuration: one schema, loaded from ``HOME/letterlock.toml`` and environment.

Every option is documented here with its unit. Environment variables override the
file: ``LETTERLOCK_<SECTION>_<OPTION>`` (upper case), e.g. ``LETTERLOCK_SMTP_PORT=2526``
or ``LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB=19456``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, get_type_hints

from letterlock.errors import ConfigError

CONFIG_FILE = "letterlock.toml"
ENV_PREFIX = "LETTERLOCK_"

OTHER_ENV_VARIABLES = frozenset({
    "LETTERLOCK_HOME",  # the data directory, where --home is not given (cli/common.py)
    "LETTERLOCK_TEST_POSTGRES_URL",  # the test suite's PostgreSQL server (tests, bench)
    "LETTERLOCK_SCREENSHOTS",  # where the browser tests keep their screenshots
})
"""LETTERLOCK_* variables that are read but are not options of this schema."""

T = TypeVar("T")


def _option(default: T, unit: str) -> T:
    """An option measured in ``unit`` (``bytes``, ``seconds``, ``TCP port``, a count
    of what it counts): ``letterlock config`` shows the unit beside the value."""
    return field(default=default, metadata={"unit": unit})


@dataclass(frozen=True)
class ServerConfig:
    bind: str = "127.0.0.1"
    """Address every listener binds to."""
    hostname: str = "localhost"
    """Name this server announces in SMTP greetings and Received headers."""
    tls_cert: str = ""
    """PEM certificate path; empty means a self-signed one made under HOME/control/tls."""
    tls_key: str = ""
    """PEM private key path matching ``tls_cert``."""


@dataclass(frozen=True)
class SmtpConfig:
    port: int = _option(2525, "TCP port")
    """MX listener TCP port."""
    submission_port: int = _option(2587, "TCP port")
    """Submission listener TCP port (STARTTLS, AUTH)."""
    lmtp_port: int = _option(0, "TCP port")
    """LMTP listener TCP port, for a front MTA (Postfix ``lmtp:inet:HOST:PORT``); 0
    disables it. It binds to ``server.bind`` like every listener: where that is not
    loopback, firewall it or prefer the socket below."""
    lmtp_socket: str = "lmtp.sock"
    """LMTP listener Unix socket path, for a front MTA on this machine (Postfix
    ``lmtp:unix:PATH``); a relative path is under HOME; empty disables it. Made mode
    0660: the server's user and group may connect (put the MTA's user in the group).
    Peers on it count as loopback for ``trusted_networks``."""
    sender_checks: bool = True
    """Check SPF and the DKIM signatures of mail arriving on the MX listener (DNS
    lookups) and record the results in an Authentication-Results field (RFC 8601);
    nothing is refused on these grounds."""
    dmarc: bool = True
    """With ``sender_checks``: evaluate DMARC (RFC 7489) from the SPF and DKIM results
    and act on the sender domain's policy: ``p=reject`` refuses the message (550 5.7.1
    after DATA), ``p=quarantine`` delivers it to the recipient's Junk folder."""
    arc_trusted_sealers: str = ""
    """Comma-separated domains whose ARC seals (RFC 8617) are trusted: a message that
    fails DMARC but arrives with a valid ARC chain last sealed by one of them (a
    mailing list or forwarder you know) is delivered as if DMARC had passed. Empty:
    ARC is checked and reported, never trusted."""
    postmaster: str = ""
    """Account (address) that receives mail for postmaster@ and abuse@ any hosted
    domain, and for the bare `postmaster` of RFC 5321, where no account of that
    address exists; empty: the domain's first account (the earliest made) takes it,
    or the server's first account for a domain without accounts (RFC 5321 4.5.1
    requires postmaster, RFC 2142 asks for abuse)."""
    subaddress_separator: str = "+"
    """Sub-addressing (RFC 5233): mail to ``user+tag@domain`` reaches ``user@domain``
    (or the alias or group of that name), and its owner may send as it. The
    character that starts the tag; empty switches sub-addressing off."""
    max_message_bytes: int = _option(50 * 1024 * 1024, "bytes")
    """Largest accepted message, in bytes (advertised as SIZE)."""
    max_data_in_flight_bytes: int = _option(256 * 1024 * 1024, "bytes")
    """Message data all SMTP/LMTP sessions of one process may hold at once, from
    DATA until the message is stored (each message costs about three times its size
    in memory meanwhile); a message that would pass it is read, discarded and
    answered 452 4.3.1 so its sender retries later. 0: no bound."""
    smarthost: str = ""
    """host:port to relay all outbound mail through; empty means direct MX delivery."""
    outbound_tls: str = "opportunistic"
    """Outbound STARTTLS policy: ``opportunistic``, ``required`` or ``none``."""
    queue_max_age_s: int = _option(5 * 24 * 3600, "seconds")
    """Seconds an outbound message is retried before it bounces (Action: failed,
    status 4.4.7) to the sender."""
    mta_sts: bool = True
    """Honour recipient domains' MTA-STS policies (RFC 8461) in MX delivery: with mode
    enforce, mail goes only to the MX hosts a policy names and only over TLS with a
    valid certificate (else it waits, and `letterlock queue show` says why); mode
    testing only logs. Policies are fetched over HTTPS and kept for their max_age.
    Not used with a smarthost."""
    dane: bool = True
    """Honour DANE TLSA records (RFC 7672) of recipient MX hosts in MX delivery where
    DNSSEC vouches for them (the AD bit of the system's resolver, which must then be
    a validating one): the MX's certificate must match a DANE-EE record, else the
    mail waits. Without DNSSEC, DANE does not apply. Not used with a smarthost."""
    delay_notice_s: int = _option(4 * 3600, "seconds")
    """Seconds an outbound message may wait for some recipient before its sender gets
    one delayed-delivery notice (RFC 3464, Action: delayed) with the last answer of
    the receiving server; 0: never. None for a null sender or a bounce."""
    tls_reports: bool = True
    """Send SMTP TLS reports (RFC 8460): once a day, to each recipient domain that
    publishes a ``_smtp._tls`` TXT record, how TLS went with its MX hosts the day
    before (counts per policy and result, server names and IPs; no addresses, no
    subjects). Only when ``tls_report_from`` is set too; off with a smarthost."""
    tls_report_from: str = ""
    """The reporting address TLS reports are sent from (From, MAIL FROM, the
    report's contact): an account or alias of a hosted domain (bounces of reports
    go there); empty: no reports are sent."""
    tls_report_inbox: str = ""
    """Address whose mail is taken as TLS reports other servers send about ours
    (publish ``_smtp._tls.DOMAIN TXT "v=TLSRPTv1; rua=mailto:ADDRESS"``): read at
    arrival, stored for `letterlock tls-reports`, never put in a mailbox; a report
    that cannot be read is refused (550 5.6.0). Empty: off (the address is then an
    ordinary one). The HTTP listener also takes them at ``POST /tlsrpt``."""
    max_connections_per_ip: int = _option(20, "connections")
    """Concurrent SMTP connections allowed from one client address (counted per
    process: with ``workers`` the limit applies in each one)."""
    trusted_networks: str = "127.0.0.0/8, ::1/128"
    """Comma-separated CIDR blocks of the operator's own hosts (e.g. a front MTA):
    their LMTP and submission sessions are not held to the per-address command rate
    (an authenticated submission session never is). The MX listener is always
    metered. Empty: nobody is trusted."""
    workers: int = _option(0, "processes")
    """Processes accepting MX connections: 0 or 1 means the main process alone; N >= 2
    adds N-1 worker processes sharing the MX port (SO_REUSEPORT), each with its own
    event loop, for throughput beyond one CPU core (the same workers serve IMAP when
    ``imap.processes`` asks for them). Submission and LMTP stay in the main
    process."""


@dataclass(frozen=True)
class ImapConfig:
    port: int = _option(1143, "TCP port")
    """IMAP listener TCP port (STARTTLS)."""
    tls_port: int = _option(1993, "TCP port")
    """IMAP implicit-TLS listener TCP port."""
    max_literal_bytes: int = _option(64 * 1024 * 1024, "bytes")
    """Largest literal (APPEND size), in bytes; advertised as APPENDLIMIT."""
    max_line_bytes: int = _option(64 * 1024, "bytes")
    """Longest command line outside literals, in bytes."""
    idle_timeout_s: int = _option(30 * 60, "seconds")
    """Seconds an authenticated idle connection may stay silent (RFC 9051: >= 30 min)."""
    login_timeout_s: int = _option(60, "seconds")
    """Seconds from connecting to a successful login: a connection not logged in by
    then is closed with ``* BYE``, whatever it sent meanwhile (commands do not extend
    it)."""
    max_unauthenticated_per_address: int = _option(20, "connections")
    """Connections not yet logged in that one client address may hold at once; more
    are refused with ``* BYE Too many connections``. Counted per process (see
    ``processes``): with N processes an address may hold up to N times as many."""
    max_unauthenticated: int = _option(1000, "connections")
    """Connections not yet logged in that one process holds at once, from all
    addresses; more are refused like the above (per process, as above)."""
    trusted_networks: str = "127.0.0.0/8, ::1/128"
    """Comma-separated CIDR blocks whose clients are not held to (nor counted in) the
    two caps above: loopback by default (a webmail or proxy on this machine). Empty:
    nobody is exempt."""
    hot_digests_mib: int = _option(64, "MiB")
    """MiB of decoded message digests (headers, structure) each server process keeps
    for up to 30 s after their last use, so sessions reading the same mailboxes (one
    person's phone and laptop) unseal them once; 0 keeps none (services/mail/digests.py)."""
    processes: int = _option(0, "processes")
    """Processes accepting IMAP connections (count): 0 means one per CPU available to
    the server (its CPU affinity), 1 the main process alone; N >= 2 adds worker
    processes that share the IMAP and IMAPS ports (SO_REUSEPORT, the kernel spreads
    connections) and tell each other of mailbox changes, so IDLE, EXPUNGE and flag
    updates reach every session. A worker serves MX too when ``smtp.workers`` asks
    for as many processes."""


@dataclass(frozen=True)
class SieveConfig:
    port: int = _option(4190, "TCP port")
    """ManageSieve (RFC 5804) listener TCP port (STARTTLS, AUTHENTICATE PLAIN); 0: off."""
    max_script_bytes: int = _option(64 * 1024, "bytes")
    """Largest filter script, in bytes (ManageSieve MAXSIZE)."""
    max_account_bytes: int = _option(1024 * 1024, "bytes")
    """Total bytes of all filter scripts of one account (they count toward its
    storage quota too)."""
    max_scripts: int = _option(32, "scripts")
    """Filter scripts one account may keep."""
    max_redirects: int = _option(4, "redirects")
    """Redirect actions one script may take per message (MAXREDIRECTS)."""


@dataclass(frozen=True)
class HttpConfig:
    port: int = _option(8080, "TCP port")
    """HTTP listener TCP port (API and pages)."""
    metrics_port: int = _option(0, "TCP port")
    """TCP port of the Prometheus endpoint (``/metrics``, counted across every process
    of the server); 0 disables it. It needs no login: keep it on loopback or behind a
    firewall (e.g. 9125)."""
    metrics_bind: str = "127.0.0.1"
    """Address the metrics endpoint binds to (not ``server.bind``: metrics are for the
    operator's Prometheus, not for the internet)."""


@dataclass(frozen=True)
class LogConfig:
    format: str = "logfmt"
    """Structured log lines on stderr (journald under systemd): ``logfmt`` or
    ``json``, one line per event (see docs/operating.md, "Logs")."""
    level: str = "info"
    """Least severe events written: ``debug`` (adds per-message timings), ``info``
    (every login, session, message, delivery attempt, rejection, legal and admin
    action), ``warning`` (failed logins, refusals, deferrals, failures) or
    ``error``."""
    addresses: str = "hashed"
    """How mail addresses appear in log lines: ``hashed`` (a keyed hash of the
    address, the same for every line about it, with its domain: ``~3f0c9a7d5e21b864@
    example.org``; the key is HOME/control/log-pseudonym.key, and ``letterlock
    hash-address ADDRESS`` prints an address's pseudonym) or ``full``."""


@dataclass(frozen=True)
class CryptoConfig:
    argon2_memory_kib: int = _option(65536, "KiB")
    """Argon2id memory cost per password derivation, in KiB."""
    argon2_iterations: int = _option(3, "passes")
    """Argon2id passes."""
    argon2_lanes: int = _option(1, "lanes")
    """Argon2id parallelism."""
    max_concurrent_kdf: int = _option(2, "derivations")
    """Password derivations allowed at once (bounds memory: this x argon2_memory_kib).
    Waiting derivations are served round-robin across client addresses."""
    kdf_queue_per_client: int = _option(16, "derivations")
    """Password derivations one client address (an IPv6 /64) may have waiting for a
    slot (count); more are refused with "try again later"."""
    login_delay_max_ms: int = _option(15_000, "milliseconds")
    """Longest wait before a password check for a client or an account that keeps
    failing: the wait starts after a few failures and doubles with each (see
    docs/operating.md, "Password guessing"); 0 switches the back-off off."""
    key_cache_ttl_s: int = _option(3600, "seconds")
    """Seconds after a full login (Argon2id) during which logins to that account with
    the same password skip Argon2id: the account key stays in memory, encrypted under
    a fast KDF of the password (see docs/operating.md); 0 disables."""
    key_cache_max_uses: int = _option(10_000, "logins")
    """Logins one key cache entry may serve (count) before the next full login."""
    key_cache_max_entries: int = _option(10_000, "accounts")
    """Accounts kept in the key cache (count, ~0.5 KiB each); the oldest goes first."""
    chunk_bytes: int = _option(64 * 1024, "bytes")
    """Plaintext bytes per sealed chunk."""
    seal_processes: int = _option(-1, "processes")
    """Helper processes that seal incoming mail beside the event loop, per server
    process (count); -1: one per CPU not taken by an event loop (the main process
    and its workers: the larger of smtp.workers and imap.processes), at most 4, and
    none in worker processes; 0: seal in the server process."""


@dataclass(frozen=True)
class StorageConfig:
    fsync: bool = True
    """Flush to stable storage before acknowledging (disable only for throwaway tests)."""
    group_commit_max: int = _option(256, "appends")
    """Most appends flushed together in one group commit."""
    postgres_url: str = ""
    """If set, cells keep metadata in PostgreSQL (one database per region: {region})."""
    s3_endpoint: str = ""
    """If set, cells keep sealed blobs in an S3-compatible service at this URL."""
    s3_bucket: str = "letterlock-{region}"
    """S3 bucket of each region ({region} is the region id); the buckets must exist."""
    s3_access_key: str = ""
    """S3 access key id."""
    s3_secret_key: str = ""
    """S3 secret access key."""
    s3_region: str = "us-east-1"
    """Region name S3 requests are signed for (what the S3 service expects)."""


@dataclass(frozen=True)
class LegalConfig:
    profile: str = "location-2016"
    """Policy profile that recommends decisions: ``location-2016`` or ``cloud-act-2018``."""
    policy_dir: str = ""
    """Directory of the operator's own Cedar policies; empty uses the shipped profile."""
    operator_country: str = "US"
    """ISO 3166 country of the operator's seat."""
    tick_interval_s: int = _option(60, "seconds")
    """Seconds between runs of due legal work in ``serve`` (notices, hold expiry)."""
    contact: str = ""
    """Where a user notice tells the account holder to write about a legal request
    (an address or a web page); empty: postmaster@ the holder's own domain."""
    four_eyes: str = "content,override,flagged"
    """Decisions a second operator must approve before they are executed (comma list):
    ``content`` (some content disclosed), ``override`` (the recommendation overridden),
    ``flagged`` (a finding flagged for review); ``off``: every decision executes at
    once (docs/legal-requests.md, "Four-eyes approval")."""


@dataclass(frozen=True)
class SpamConfig:
    rspamd: str = "off"
    """Check mail arriving on the MX listener with rspamd (its HTTP protocol): ``off``
    or ``on``. Its action decides: reject refuses (550), greylist and soft reject
    defer (451), add header and rewrite subject deliver to Junk. rspamd sees each
    message's content (docs/operating.md, "Spam filtering")."""
    rspamd_url: str = "http://127.0.0.1:11333"
    """rspamd's normal worker (``/checkv2``)."""
    rspamd_controller_url: str = "http://127.0.0.1:11334"
    """rspamd's controller worker, taught by users moving mail into and out of Junk
    (``/learnspam``, ``/learnham``); empty: no learning."""
    rspamd_password: str = ""
    """The controller's password (its ``password`` or ``enable_password``); empty where
    the controller trusts this host (its ``secure_ip``)."""
    timeout_s: int = _option(10, "seconds")
    """Seconds one rspamd request may take; after that the message is delivered
    unchecked (never lost, never held)."""


@dataclass(frozen=True)
class OperationsConfig:
    backup_dir: str = ""
    """Directory the operator console writes region backups and mail exports into
    (each into a new directory of its own) and reads mail imports from; the browser
    only picks names under it, never a path. Empty: ``HOME-backups`` beside HOME
    (backups are refused inside HOME)."""


@dataclass(frozen=True)
class Config:
    home: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    sieve: SieveConfig = field(default_factory=SieveConfig)
    log: LogConfig = field(default_factory=LogConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    legal: LegalConfig = field(default_factory=LegalConfig)
    spam: SpamConfig = field(default_factory=SpamConfig)
    operations: OperationsConfig = field(default_factory=OperationsConfig)

    @property
    def control_dir(self) -> Path:
        return self.home / "control"

    @property
    def run_dir(self) -> Path:
        """Where the processes of one running server leave sockets for each other."""
        return self.control_dir / "run"

    @property
    def backup_root(self) -> Path:
        """Where the console's backups and exports go (``operations.backup_dir``)."""
        if self.operations.backup_dir:
            return Path(self.operations.backup_dir).expanduser().absolute()
        home = self.home.absolute()
        return home.parent / f"{home.name}-backups"

    def region_dir(self, region_id: str) -> Path:
        return self.home / "regions" / region_id


_SECTIONS: dict[str, type] = {
    name: hint for name, hint in get_type_hints(Config).items() if name != "home"
}


def _coerce(section: str, name: str, hint: Any, raw: Any, source: str) -> Any:
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        return str(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{source}: {section}.{name} must be {hint.__name__}, got {raw!r}") from exc


def load(home: Path, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Build the configuration for ``home``: defaults, then the TOML file, then the
    environment, then explicit ``overrides`` (from command-line flags)."""
    env = os.environ if env is None else env
    data: dict[str, dict[str, Any]] = {}
    path = home / CONFIG_FILE
    if path.exists():
        try:
            parsed = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for section, values in parsed.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}]")
            data[section] = dict(values)
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        hints = get_type_hints(cls)
        values = data.get(section, {})
        for key in values:
            if key not in hints:
                raise ConfigError(f"{path}: unknown option {section}.{key}")
        kwargs: dict[str, Any] = {}
        for name, hint in hints.items():
            if name in values:
                kwargs[name] = _coerce(section, name, hint, values[name], str(path))
            env_key = f"LETTERLOCK_{section}_{name}".upper()
            if env_key in env:
                kwargs[name] = _coerce(section, name, hint, env[env_key], env_key)
            if overrides and name in overrides.get(section, {}):
                kwargs[name] = overrides[section][name]
        sections[section] = cls(**kwargs)
    return Config(home=home, **sections)


class Option(NamedTuple):
    """One option of the schema, as ``letterlock config`` lists it."""

    name: str
    """``section.option``."""
    kind: type
    default: Any
    unit: str
    """Empty for options without one (text, switches)."""
    doc: str


def env_name(option: str) -> str:
    """``section.option`` -> the environment variable that overrides it."""
    return ENV_PREFIX + option.replace(".", "_").upper()


def unknown_env(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """LETTERLOCK_* variables in ``env`` (any case) that nothing reads, each with the
    nearest variable that is read (None when none is near): a misspelt override
    would otherwise be ignored without a word."""
    known = {env_name(o.name) for o in describe()} | OTHER_ENV_VARIABLES
    tails = {name.removeprefix(ENV_PREFIX): name for name in known}
    out: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or name in known:
            continue
        # Compare what follows the prefix, which every name shares.
        near = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX),
                                         list(tails), n=1, cutoff=0.75)
        out.append((name, tails[near[0]] if near else None))
    return out


@functools.cache
def describe() -> tuple[Option, ...]:
    """Every option with its type, default, unit and documentation (the docstring
    under it in this module)."""
    import ast
    import inspect

    rows: list[Option] = []
    for section, cls in _SECTIONS.items():
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body  # type: ignore[attr-defined]
        docs: dict[str, str] = {}
        for prev, node in itertools.pairwise(body):
            if isinstance(prev, ast.AnnAssign) and isinstance(node, ast.Expr):
                target = prev.target
                if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                    docs[target.id] = inspect.cleandoc(str(node.value.value))
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            rows.append(Option(f"{section}.{f.name}", hints[f.name], f.default,
                               f.metadata.get("unit", ""), docs.get(f.name, "")))
    return tuple(rows)
