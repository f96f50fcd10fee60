"""Opening the audit log for the application: ``open_sink(HOME/control/audit)``.

The first open creates the operator's log key and an empty signed log, so
``letterlock init`` makes the key as a side effect of building the application.
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path

from letterlock.audit.keys import has_log_key
from letterlock.audit.sink import AuditLog
from letterlock.audit.store import MerkleLog, init_log


def open_sink(directory: Path, executor: Executor | None = None) -> AuditLog:
    """The application's ``AuditSink``, creating the log on first use."""
    if not has_log_key(directory):
        init_log(directory)
    return AuditLog(MerkleLog(directory), executor)


def open_reader(directory: Path) -> MerkleLog:
    """A read-only view at the latest signed head (for proofs, feeds, reports)."""
    return MerkleLog(directory, writable=False)
