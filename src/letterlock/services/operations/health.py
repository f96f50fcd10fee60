"""The operator's picture of a running letterlock, one component at a time (the admin
console's overview): each region's storage, the listeners, the outbound queue, the
audit log's signed head, rspamd and the TLS certificate served.

Every check is read-only and bounded (a TCP connect of at most ``PROBE_S``, a count of
files under a region's directory, one read of a store); a check that fails says why in
its ``detail`` and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from letterlock.audit import verify
from letterlock.audit.log import open_reader
from letterlock.config import Config
from letterlock.services.accounts import certificates
from letterlock.services.cells import Cells
from letterlock.services.operations.queue_admin import QueueAdmin

PROBE_S = 1.0
MAX_FILES_COUNTED = 200_000
"""A region directory's size is summed over at most this many files (then shown as
"at least")."""


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class RegionStorage:
    region: str
    country: str
    metadata: str
    """``SQLite at PATH`` or ``PostgreSQL (database NAME)``."""
    blobs: str
    """``files under PATH`` or ``S3 bucket NAME at URL``."""
    size: int | None
    """Bytes under the region's directory (local storage only)."""
    size_complete: bool
    reachable: bool
    detail: str


@dataclass(frozen=True)
class CertificateInfo:
    path: str
    self_signed: bool
    subject: str
    names: tuple[str, ...]
    fingerprint: str
    """SHA-256 of the DER certificate, hex in pairs."""
    not_after: datetime | None
    days_left: int | None
    error: str = ""


def _dir_size(path: Path) -> tuple[int, bool]:
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            if files > MAX_FILES_COUNTED:
                return total, False
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total, True


async def region_storage(config: Config, cells: Cells, *,
                         sizes: bool = True) -> list[RegionStorage]:
    """Each region's storage; ``sizes``: also sum the bytes under its directory (a
    walk of up to MAX_FILES_COUNTED files)."""
    out = []
    for cell in cells:
        rid = cell.region.id
        metadata = (f"PostgreSQL (database for {rid})" if config.storage.postgres_url
                    else f"SQLite under {config.region_dir(rid)}")
        blobs = (f"S3 bucket {config.storage.s3_bucket.replace('{region}', rid)} at "
                 f"{config.storage.s3_endpoint}" if config.storage.s3_endpoint
                 else f"files under {config.region_dir(rid)}")
        try:
            await asyncio.wait_for(cell.store.list_accounts(), 5.0)
            reachable, detail = True, "answers"
        except Exception as exc:  # any failure is the answer shown
            reachable, detail = False, f"{type(exc).__name__}: {exc}"[:200]
        size: int | None = None
        complete = False
        if sizes:
            size, complete = await asyncio.to_thread(_dir_size, config.region_dir(rid))
        out.append(RegionStorage(rid, cell.region.country, metadata, blobs, size,
                                 complete, reachable, detail))
    return out


async def _probe(host: str, port: int) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                 PROBE_S)
    except (OSError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _probe_host(bind: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)


async def listeners(config: Config) -> list[Check]:
    host = _probe_host(config.server.bind)
    wanted = [("SMTP (MX)", config.smtp.port),
              ("SMTP submission", config.smtp.submission_port),
              ("IMAP", config.imap.port), ("IMAPS", config.imap.tls_port)]
    if config.smtp.lmtp_port:
        wanted.append(("LMTP", config.smtp.lmtp_port))
    out = []
    for name, port in wanted:
        failed = await _probe(host, port)
        out.append(Check(f"{name} {host}:{port}", failed is None,
                         "accepts connections" if failed is None else f"not listening: "
                         f"{failed}"))
    if config.smtp.lmtp_socket:
        path = config.home / config.smtp.lmtp_socket  # an absolute path stays itself
        there = path.is_socket()
        out.append(Check(f"LMTP unix:{path}", there,
                         "socket present" if there else "no socket at this path"))
    return out


async def rspamd(config: Config) -> Check:
    if config.spam.rspamd.strip().lower() == "off":
        return Check("rspamd", True, "not used (spam.rspamd = off)")
    url = urllib.parse.urlsplit(config.spam.rspamd_url)
    failed = await _probe(url.hostname or "127.0.0.1", url.port or 11333)
    return Check(f"rspamd {config.spam.rspamd_url}", failed is None,
                 "reachable" if failed is None else f"unreachable: {failed}")


def _queue_stats(config: Config, now: datetime) -> Check:
    entries = QueueAdmin(config.home, config.run_dir).entries()
    if not entries:
        return Check("outbound queue", True, "empty")
    oldest = int((now - entries[0].created).total_seconds())
    held = sum(1 for e in entries if e.held)
    return Check("outbound queue", True,
                 f"{len(entries)} message(s), oldest {oldest // 3600} h "
                 f"{oldest % 3600 // 60} min, {held} on hold")


async def queue(config: Config) -> Check:
    try:
        return await asyncio.to_thread(_queue_stats, config, datetime.now(UTC))
    except Exception as exc:
        return Check("outbound queue", False, f"cannot read the spool: {exc}"[:200])


def _audit_head(audit_dir: Path) -> Check:
    with open_reader(audit_dir) as log:
        head = log.head()
    verify.check_head(head)
    return Check("audit log", True,
                 f"signed head verified: {head.tree_size} events, root "
                 f"{head.root_hash.hex()[:16]}…, signed {head.timestamp}")


async def audit_log(config: Config) -> Check:
    try:
        return await asyncio.to_thread(_audit_head, config.control_dir / "audit")
    except Exception as exc:
        return Check("audit log", False, f"head not verified: {exc}"[:200])


def certificate(config: Config, now: datetime | None = None) -> CertificateInfo:
    """The certificate the TLS listeners serve (blocking: reads one file)."""
    path, _key, self_signed = certificates.in_use(
        config.server.tls_cert, config.server.tls_key, config.control_dir / "tls")
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return CertificateInfo(str(path), self_signed, "", (), "", None, None,
                               f"cannot read it: {exc}")
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(str(n.value) for n in alt.value)
    except x509.ExtensionNotFound:
        names = ()
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    expiry = cert.not_valid_after_utc
    left = (expiry - (now or datetime.now(UTC))).days
    return CertificateInfo(str(path), self_signed, cert.subject.rfc4514_string(), names,
                           ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
                           expiry, left)


async def overview(config: Config, cells: Cells) -> list[Check]:
    """Every component's check, in the order the overview shows them."""
    checks: list[Check] = []
    for region in await region_storage(config, cells, sizes=False):
        checks.append(Check(f"storage {region.region}", region.reachable, region.detail))
    checks += await listeners(config)
    checks.append(await queue(config))
    checks.append(await audit_log(config))
    checks.append(await rspamd(config))
    cert = await asyncio.to_thread(certificate, config)
    if cert.error:
        checks.append(Check("TLS certificate", False, cert.error))
    else:
        assert cert.days_left is not None
        checks.append(Check("TLS certificate", cert.days_left > 14,
                            f"expires in {cert.days_left} days"
                            + (" (self-signed)" if cert.self_signed else "")))
    return checks
