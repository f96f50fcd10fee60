"""`letterlock backup` under load and `letterlock restore` after the region is gone
(issue 15 point 4) on the embedded storage (SQLite and blob packs under HOME): the
scenario is support/backup_scenario.py; here also the refusals of bad input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import mail_scenario
from support.backup_scenario import run_cli, run_scenario


def test_backup_under_load_then_restore_after_the_region_is_destroyed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mail_scenario.prepare(home)
    run_scenario(tmp_path, home, lambda: shutil.rmtree(home / "regions" / "us-east"),
                 "sqlite+files")


def test_backup_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    home, target = tmp_path / "home", tmp_path / "target"
    mail_scenario.prepare(home)
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    done = run_cli(home, "backup", "us-east", str(target))
    assert done.returncode != 0 and "is not empty" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    unknown = run_cli(home, "backup", "mars", str(tmp_path / "new"))
    assert unknown.returncode != 0 and "mars" in unknown.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("what", ["manifest", "extra", "missing"])
def test_restore_names_what_is_wrong_with_a_backup(tmp_path: Path, what: str) -> None:
    home, backup = tmp_path / "home", tmp_path / "backup"
    mail_scenario.prepare(home)
    assert run_cli(home, "backup", "us-east", str(backup)).returncode == 0
    shutil.rmtree(home / "regions" / "us-east")
    if what == "manifest":
        text = (backup / "manifest.json").read_text()
        (backup / "manifest.json").write_text(text.replace('"us-east"', '"eu-dublin"', 1))
        wanted = "manifest.json is damaged"
    elif what == "extra":
        (backup / "blobs" / "00000009.pack").write_bytes(b"x")
        wanted = "blobs/00000009.pack is not part of the backup"
    else:
        (backup / "metadata" / "cell.sqlite3").unlink()
        wanted = "metadata/cell.sqlite3 is missing"
    done = run_cli(home, "restore", "us-east", str(backup))
    assert done.returncode != 0 and wanted in done.stderr, done.stderr
    assert not (home / "regions" / "us-east" / "blobs").exists() or not any(
        (home / "regions" / "us-east" / "blobs").glob("*.pack"))
