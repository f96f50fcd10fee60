"""The console's background backups (services/operations/backup_jobs.py) and what it
lists under the backup root (backup_root.py): progress while one runs, a second backup
of the same region refused meanwhile, a failure kept for the page, a directory without
its manifest never offered as a backup to restore, and names that are not plain
entries of the root refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from letterlock.errors import InvalidInput, Refused, StorageError
from letterlock.services.operations import backup_root
from letterlock.services.operations.backup import BackupResult
from letterlock.services.operations.backup_jobs import BackupJob, BackupJobs


async def test_a_running_backup_shows_progress_and_blocks_another_of_its_region(
        tmp_path: Path) -> None:
    jobs, release = BackupJobs(), asyncio.Event()
    target = tmp_path / "us-east-1"

    def slow(into: Path) -> Callable[[], Awaitable[BackupResult]]:
        async def run() -> BackupResult:
            (into / "blobs").mkdir(parents=True)
            (into / "blobs" / "00000001.pack").write_bytes(b"x" * 5000)
            await release.wait()
            raise StorageError("the disk is full")
        return run

    job = jobs.start(BackupJob("us-east", target, "root"), slow(target))
    await asyncio.sleep(0.05)
    assert job.running and job.progress() == (1, 5000)
    with pytest.raises(Refused, match="already running"):
        jobs.start(BackupJob("us-east", tmp_path / "us-east-2", "root"),
                   slow(tmp_path / "us-east-2"))
    other = jobs.start(BackupJob("eu-dublin", tmp_path / "eu-1", "root"),
                       slow(tmp_path / "eu-1"))
    assert [j.name for j in jobs.list()] == ["eu-1", "us-east-1"]
    release.set()
    await jobs.wait()
    assert not job.running and job.error == "the disk is full" and job.result is None
    assert other.error == "the disk is full"
    again = jobs.start(BackupJob("us-east", tmp_path / "us-east-3", "root"),
                       slow(tmp_path / "us-east-3"))
    await jobs.wait()
    assert again.finished is not None


def test_the_root_lists_backups_and_refuses_names_that_are_not_its_entries(
        tmp_path: Path) -> None:
    root = tmp_path / "backups"
    assert backup_root.listing(root) == []
    (root / "us-east-x" / "metadata").mkdir(parents=True)
    (root / "mail-in" / "cur").mkdir(parents=True)
    (root / "export-y.part").mkdir()
    listed = {i.name: i for i in backup_root.listing(root)}
    assert sorted(listed) == ["mail-in", "us-east-x"]
    assert listed["us-east-x"].is_backup and listed["us-east-x"].manifest is None
    assert "no manifest yet" in str(listed["us-east-x"].problem)
    assert not listed["mail-in"].is_backup
    assert backup_root.entry(root, "mail-in") == root / "mail-in"
    for name in ("", "..", "../backups", "/etc", ".hidden", "a/b", "missing"):
        with pytest.raises(InvalidInput):
            backup_root.entry(root, name)
    with pytest.raises(InvalidInput, match=r"manifest\.json is missing"):
        backup_root.verify_backup(root, "mail-in")
