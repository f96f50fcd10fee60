"""Production packages: what a disclosure decision hands over, and how anyone checks it.

``produce`` gathers exactly the approved categories of each target (subscriber,
identification, plain traffic metadata, sealed content as ciphertext), writes them
with a manifest signed by the operator's Ed25519 production key, as a directory and a
zip. Mail a legal hold keeps (expunged by the user after a preservation) is part of
the account's traffic and content like the mail still in its mailboxes (marked
``held``). ``mailbox_contents`` is what a hold records when it is placed.
``verify_package`` is the pure check behind ``letterlock legal verify-package``: the
manifest's signature and every item's SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from letterlock.errors import InvalidInput, NotFound
from letterlock.policy import DateRange, Decision, format_time
from letterlock.services.cells import Cells
from letterlock.storage.contracts import ControlStore
from letterlock.storage.legal_sqlite import HeldMessage

PACKAGE_FORMAT = "letterlock-production/1"
KEY_FILE = "production-key.pem"
SEALED_STATEMENT = ("Content of a sealed account is included only as ciphertext: it is "
                    "sealed to the account holder's key, and the operator holds no key "
                    "that can open it.")


@dataclass(frozen=True)
class PackageCheck:
    ok: bool
    matter: str | None
    items: int
    problems: tuple[str, ...]
    public_key: str | None


async def mailbox_contents(control: ControlStore, cells: Cells,
                           address: str) -> list[HeldMessage]:
    """Every message of the account now, as a hold records it."""
    region = await control.lookup(address)
    cell = None if region is None else cells.get(region)
    record = None if cell is None else await cell.store.get_account(address)
    if region is None or cell is None or record is None:
        return []
    return [HeldMessage(region, msg.blob_id, box.name, msg.uid, msg.size, msg.internaldate,
                        tuple(sorted(msg.flags)))
            for box in await cell.store.list_mailboxes(record.id)
            for msg in await cell.store.list_messages(box.id)]


async def produce(matter_id: str, decision: Decision, *, control: ControlStore, cells: Cells,
                  work_dir: Path, clock: Callable[[], datetime],
                  held: Mapping[str, Sequence[HeldMessage]] | None = None,
                  date_range: DateRange | None = None,
                  exclude: Collection[str] = (),
                  earlier: Collection[tuple[str, str]] = (),
                  name: str | None = None) -> str:
    """Write the signed package for the disclosed findings of ``decision`` under
    ``work_dir/packages/<matter_id>`` (and a zip beside it). ``held``: per target,
    what legal holds keep of it. Only mail received in ``date_range`` (when given) is
    part of traffic and content, and never the blobs in ``exclude`` (the provider's
    own notices to the user). ``earlier``: (target, category) pairs an earlier stage
    of the matter handed over, left out here and named in the manifest; ``name``: the
    package's directory name (default the matter id). Returns the package's path."""
    held = held or {}
    dropped_undated = 0

    def in_scope(blob_id: str, received: datetime | None) -> bool:
        nonlocal dropped_undated
        if blob_id in exclude:
            return False
        if date_range is None:
            return True
        if received is None:  # kept by a hold after an expunge: its date is unknown
            dropped_undated += 1
            return False
        return received in date_range
    items: list[tuple[str, str, str, bytes]] = []  # (path, target, category, data)
    unavailable: list[dict[str, str]] = []
    countries = {r.id: r.country for r in await control.list_regions()}
    for target, category, finding in decision.findings():
        if finding.outcome != "disclose" or (target, category) in earlier:
            continue
        region = await control.lookup(target)
        cell = None if region is None else cells.get(region)
        record = None if cell is None else await cell.store.get_account(target)
        if cell is None or record is None or region is None:
            unavailable.append({"target": target, "category": category,
                                "reason": "no such account"})
            continue
        if category == "subscriber":
            doc = {"address": record.address, "created": format_time(record.created),
                   "region": region, "country": countries.get(region, "")}
            items.append((f"subscriber/{target}.json", target, category, _j(doc)))
        elif category == "identification":
            doc = {"address": record.address, "account_id": record.id,
                   "key_id": record.key_id.hex(), "public_key": record.public_key.hex(),
                   "key_custody": record.custody}
            items.append((f"identification/{target}.json", target, category, _j(doc)))
        elif category == "traffic":
            entries: list[dict[str, object]] = []
            live: set[str] = set()
            for box in await cell.store.list_mailboxes(record.id):
                for msg in await cell.store.list_messages(box.id, with_summary=False):
                    live.add(msg.blob_id)
                    if not in_scope(msg.blob_id, msg.internaldate):
                        continue
                    entries.append({"mailbox": box.name, "uid": msg.uid, "size": msg.size,
                                    "internaldate": format_time(msg.internaldate),
                                    "flags": sorted(msg.flags)})
            for kept in held.get(target, ()):
                if kept.blob_id not in live and in_scope(kept.blob_id, kept.internaldate):
                    entries.append({"mailbox": kept.mailbox, "uid": kept.uid,
                                    "size": kept.size, "internaldate": None
                                    if kept.internaldate is None
                                    else format_time(kept.internaldate),
                                    "flags": list(kept.flags), "held": True})
            items.append((f"traffic/{target}.json", target, category, _j(entries)))
            unavailable.append({"target": target, "category": category,
                                "reason": "envelope and header fields are sealed to the "
                                          "account key; only plain metadata is included"})
        elif category == "content":
            wanted: list[tuple[str, str, str]] = []  # (path, region, blob id)
            live = set()
            for box in await cell.store.list_mailboxes(record.id):
                for msg in await cell.store.list_messages(box.id, with_summary=False):
                    live.add(msg.blob_id)
                    if in_scope(msg.blob_id, msg.internaldate):
                        wanted.append((f"content/{target}/{box.id}-{msg.uid}.sealed",
                                       region, msg.blob_id))
            wanted += [(f"content/{target}/held-{kept.blob_id}.sealed", kept.region,
                        kept.blob_id)
                       for kept in held.get(target, ())
                       if kept.blob_id not in live and in_scope(kept.blob_id,
                                                                kept.internaldate)]
            for path, where, blob in wanted:
                try:
                    data = await cells.get(where).blobs.get(blob)
                except NotFound:
                    unavailable.append({"target": target, "category": category,
                                        "reason": f"{path}: sealed blob missing"})
                    continue
                items.append((path, target, category, data))
            unavailable.append({"target": target, "category": category,
                                "reason": "plaintext: " + SEALED_STATEMENT})
    if dropped_undated:
        unavailable.append({"target": "*", "category": "traffic/content",
                            "reason": f"{dropped_undated} item(s) kept by a hold after an "
                                      "expunge have no known date and were left out: the "
                                      "request is limited to a date range"})
    key = await asyncio.to_thread(signing_key, work_dir)
    manifest: dict[str, object] = {
        "format": PACKAGE_FORMAT,
        "matter": matter_id,
        "created_at": format_time(clock()),
        "decision": decision.to_json(),
        "items": [{"path": p, "target": t, "category": c, "size": len(d),
                   "sha256": hashlib.sha256(d).hexdigest()} for p, t, c, d in items],
        "unavailable": unavailable,
        "statements": [SEALED_STATEMENT],
        "public_key": key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex(),
    }
    if date_range is not None:
        manifest["date_range"] = date_range.to_json()
    if earlier:
        manifest["disclosed_earlier"] = sorted([t, c] for t, c in earlier)
    body = _canonical(manifest)
    signature = key.sign(body).hex()
    root = work_dir / "packages" / (name or matter_id)
    await asyncio.to_thread(_write_package, root, items, body, signature)
    return str(root)


def signing_key(work_dir: Path) -> Ed25519PrivateKey:
    path = work_dir / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(loaded, Ed25519PrivateKey)
        return loaded
    work_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _j(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _write_package(root: Path, items: list[tuple[str, str, str, bytes]], manifest: bytes,
                   signature: str) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for path, _, _, data in items:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "manifest.json").write_bytes(manifest)
    (root / "manifest.sig").write_text(signature + "\n")
    archive = root.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(root).as_posix())
    for file in [*root.rglob("*"), archive]:
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())


# --- package verification (pure; used by `legal verify-package`) -----------------------------


def verify_package(path: Path, public_key_hex: str | None = None) -> PackageCheck:
    """Check a production package (directory or zip): the manifest's Ed25519 signature
    and every item's SHA-256. ``public_key_hex`` pins the operator's key."""
    files: dict[str, bytes] = {}
    try:
        if path.is_dir():
            files = {p.relative_to(path).as_posix(): p.read_bytes()
                     for p in path.rglob("*") if p.is_file()}
        else:
            with zipfile.ZipFile(path) as zf:
                files = {n: zf.read(n) for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{path}: not a readable package ({exc})") from exc
    body, sig = files.get("manifest.json"), files.get("manifest.sig")
    if body is None or sig is None:
        raise InvalidInput(f"{path}: manifest.json or manifest.sig missing")
    try:
        manifest = json.loads(body)
        key_hex = str(manifest["public_key"])
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        signature = bytes.fromhex(sig.decode().strip())
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: malformed manifest ({exc})") from exc
    problems: list[str] = []
    if public_key_hex is not None and public_key_hex.lower() != key_hex:
        problems.append("manifest is signed by a different key than the one pinned")
    try:
        key.verify(signature, body)
    except InvalidSignature:
        problems.append("manifest signature does not verify")
    items = manifest.get("items", [])
    for item in items:
        data = files.get(item["path"])
        if data is None:
            problems.append(f"{item['path']}: missing")
        elif hashlib.sha256(data).hexdigest() != item["sha256"]:
            problems.append(f"{item['path']}: SHA-256 does not match")
    listed = {i["path"] for i in items} | {"manifest.json", "manifest.sig"}
    for extra in sorted(set(files) - listed):
        problems.append(f"{extra}: not listed in the manifest")
    return PackageCheck(not problems, manifest.get("matter"), len(items), tuple(problems),
                        key_hex)
