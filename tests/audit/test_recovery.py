"""Crash recovery: the events file is the truth; what a crash leaves half-done after
the last signed head is re-derived or dropped, never silently accepted as signed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from letterlock.audit import records
from letterlock.audit.check import verify_log
from letterlock.audit.heads import read_head_file
from letterlock.audit.layout import EVENTS_FILE, HEAD_FILE, LEAVES_FILE, level_file
from letterlock.audit.store import MerkleLog
from letterlock.errors import StorageError

from .conftest import T0, build_log, numbered_event


def test_events_fsynced_but_not_hashed_are_taken_in_on_open(logdir: Path) -> None:
    build_log(logdir, 10)
    # a crash after the events fsync, before the hash files and the head: the
    # append had signed its pending head before writing them
    extra = records.encode_event(10, T0 + timedelta(days=1), numbered_event(10))
    with MerkleLog(logdir) as log:
        pending = log._stage([extra], T0 + timedelta(days=1))
    with open(logdir / EVENTS_FILE, "ab") as fh:
        fh.write(extra + b"\n")
    with MerkleLog(logdir) as log:
        assert log.size == 11
        assert log.leaf(10) == extra
        # published as signed before the events were written, not signed anew
        assert log.head() == pending
    assert read_head_file(logdir / HEAD_FILE) == pending
    assert verify_log(logdir).findings == ()


def test_missing_hash_files_are_rebuilt(logdir: Path) -> None:
    build_log(logdir, 37)
    root = read_head_file(logdir / HEAD_FILE)
    assert root is not None
    (logdir / LEAVES_FILE).unlink()
    (logdir / level_file(3)).unlink()
    with MerkleLog(logdir) as log:
        assert log.size == 37
        assert log.root() == root.root_hash
        assert log.inclusion_proof(5)
    assert verify_log(logdir).intact


def test_hash_files_ahead_of_the_head_are_cut_back(logdir: Path) -> None:
    build_log(logdir, 8)
    with open(logdir / LEAVES_FILE, "ab") as fh:
        fh.write(b"\x00" * 40 * 3)  # torn pages of an append that never finished
    with MerkleLog(logdir) as log:
        assert log.size == 8
        log.append([numbered_event(8)])
    assert verify_log(logdir).findings == ()


def test_writer_refuses_a_log_shorter_than_its_head(logdir: Path) -> None:
    build_log(logdir, 12)
    lines = (logdir / EVENTS_FILE).read_bytes().split(b"\n")[:-1]
    (logdir / EVENTS_FILE).write_bytes(b"".join(ln + b"\n" for ln in lines[:9]))
    with pytest.raises(StorageError, match="verify"):
        MerkleLog(logdir)
    # the events are not "repaired" away: the file is left for verification
    assert len((logdir / EVENTS_FILE).read_bytes().split(b"\n")) == 10
