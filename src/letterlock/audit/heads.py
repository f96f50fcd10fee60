"""Signed tree heads on disk: ``head.json``, the latest, replaced atomically, and
``heads.jsonl``, the history kept (at most one a minute by default), and
``head.pending.json``, the head of the append in progress.

An append signs the head of the tree it is about to make *before* it writes the
events, and keeps it as the pending head; once the events are durable the pending
head becomes ``head.json``. So the only events after ``head.json`` that a restart
takes in are those the pending head, signed before they were written, proves this
server wrote: nothing is ever signed because it is found in the file."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from letterlock.audit import records
from letterlock.audit.layout import HEAD_FILE, HEADS_FILE, PENDING_FILE
from letterlock.audit.verify import (
    SignedHead,
    VerificationError,
    canonical_json,
    check_head,
    log_id_for,
)
from letterlock.errors import StorageError


def sign_head(key: Ed25519PrivateKey, public: bytes, size: int, root: bytes,
              now: datetime) -> SignedHead:
    """The head of a tree of ``size`` leaves with ``root``, signed with the log key."""
    unsigned = SignedHead(
        log_id=log_id_for(public),
        public_key=public,
        tree_size=size,
        root_hash=root,
        timestamp=records.format_time(now),
        signature=b"",
    )
    signature = key.sign(canonical_json(unsigned.signed_fields()))
    return dataclasses.replace(unsigned, signature=signature)


def _replace(path: Path, text: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_pending(directory: Path, head: SignedHead) -> None:
    """Keep ``head`` (signed, of the tree an append is about to make) durably, before
    the append writes its events."""
    _replace(directory / PENDING_FILE, canonical_json(head.to_json()))
    # The rename must be durable before the events are written: without it a crash
    # could leave events no pending head explains (an alarm, not a loss).
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_pending(directory: Path, public: bytes) -> SignedHead | None:
    """The pending head, if there is one signed with this log's key."""
    try:
        head = read_head_file(directory / PENDING_FILE)
        if head is not None:
            check_head(head, public)
        return head
    except (StorageError, VerificationError):
        return None


def write_head(directory: Path, head: SignedHead, *, archive: bool) -> None:
    """Make ``head`` the latest (durably), and with ``archive`` add it to the history."""
    text = canonical_json(head.to_json())
    # No directory fsync needed: a lost rename leaves the pending head, which the
    # next start publishes (it explains the events that are already durable).
    _replace(directory / HEAD_FILE, text)
    if archive:
        fd = os.open(directory / HEADS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, text + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


def read_head_file(path: Path) -> SignedHead | None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    try:
        return SignedHead.from_json(json.loads(text))
    except (ValueError, VerificationError) as exc:
        raise StorageError(f"{path.name} is not a signed tree head: {exc}") from exc


def last_archived_head(path: Path) -> SignedHead | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return SignedHead.from_json(json.loads(line))
        except (ValueError, VerificationError):
            continue
    return None
