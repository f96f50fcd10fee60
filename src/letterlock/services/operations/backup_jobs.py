"""Backups the operator console started, running in the background of the process
that serves it: a large region takes minutes, longer than a browser (or a proxy)
waits for one answer. The page shows each one's progress (files and bytes written so
far into its directory) and, once done, the manifest's counts or why it failed.

Kept in memory: a restart forgets them (a backup cut short by it leaves nothing, see
``BackupService.backup``); the audit log keeps every finished one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from letterlock.errors import LetterlockError, Refused
from letterlock.services.operations.backup import BackupResult
from letterlock.services.operations.backup_root import tree_usage

KEPT = 20
"""Finished jobs remembered for the page."""


@dataclass
class BackupJob:
    region: str
    target: Path
    operator: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    result: BackupResult | None = None
    error: str | None = None
    finished: datetime | None = None

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def running(self) -> bool:
        return self.finished is None

    def progress(self) -> tuple[int, int]:
        """Files and bytes in the backup's directory now."""
        return tree_usage(self.target)


class BackupJobs:
    """The console's backups of this process, newest first."""

    def __init__(self) -> None:
        self._jobs: list[BackupJob] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def list(self) -> list[BackupJob]:
        return list(self._jobs)

    def start(self, job: BackupJob,
              run: Callable[[], Awaitable[BackupResult]]) -> BackupJob:
        """Run ``run`` (the backup of ``job``) in the background. Refused while a
        backup of the same region started here is still running."""
        if any(j.running and j.region == job.region for j in self._jobs):
            raise Refused(f"a backup of region {job.region} is already running")

        async def go() -> None:
            try:
                job.result = await run()
            except LetterlockError as exc:
                job.error = str(exc)
            except Exception as exc:
                # Not the service's own refusal: shown with its kind; the service
                # logged backup:region:failed and left nothing behind.
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = datetime.now(UTC)

        self._jobs.insert(0, job)
        finished = [j for j in self._jobs if not j.running]
        for old in finished[KEPT:]:
            self._jobs.remove(old)
        task = asyncio.create_task(go(), name=f"console-backup-{job.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def wait(self) -> None:
        """Until every running backup has ended (tests; a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
