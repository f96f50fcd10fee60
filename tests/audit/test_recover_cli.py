"""The application refuses to start on a tampered audit log, with a one-line reason,
until the operator runs `letterlock log recover --reason ...` (issue 13 point 3). The
real command in a subprocess."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from letterlock.audit.layout import EVENTS_FILE, HEAD_FILE
from support.cli import letterlock


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("recover") / "home"
    letterlock(home, "init")
    return home


def copy_of(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    shutil.copytree(pristine, home)
    return home, home / "control" / "audit"


def refusal(home: Path) -> str:
    """Start the application (`user list` opens all of it) and return its error."""
    proc = letterlock(home, "user", "list", check=False)
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("ts=")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_deleted_head_refuses_start_until_recovered(pristine: Path, tmp_path: Path) -> None:
    home, audit = copy_of(pristine, tmp_path)
    (audit / HEAD_FILE).unlink()
    assert "head.json) is missing" in refusal(home)
    assert not (audit / HEAD_FILE).exists()
    assert letterlock(home, "log", "recover", check=False).returncode == 2  # no --reason
    done = letterlock(home, "log", "recover", "--reason", "restored head by mistake",
                      "--keep-tail")
    assert "recorded    as event" in done.stdout
    letterlock(home, "user", "list")
    assert letterlock(home, "log", "verify").stdout.startswith("OK ")
    proof = letterlock(home, "log", "proof", done.stdout.split("as event ")[1].split()[0])
    assert "log:tree:recovered" in proof.stdout


def test_forged_event_refuses_start_and_is_set_aside(pristine: Path, tmp_path: Path) -> None:
    home, audit = copy_of(pristine, tmp_path)
    events = audit / EVENTS_FILE
    lines = events.read_bytes().split(b"\n")[:-1]
    forged = lines[-1].replace(b'"i":', b'"i":1', 1)
    events.write_bytes(events.read_bytes() + forged + b"\n")
    assert "no append of this server made" in refusal(home)
    need = letterlock(home, "log", "recover", "--reason", "INC-1", check=False)
    assert need.returncode != 0 and "--set-aside-tail" in need.stderr
    done = letterlock(home, "log", "recover", "--reason", "INC-1", "--set-aside-tail")
    assert "set aside" in done.stdout
    letterlock(home, "user", "list")
    assert forged not in events.read_bytes()


def test_whitespace_edit_refuses_start_and_recovery(pristine: Path, tmp_path: Path) -> None:
    home, audit = copy_of(pristine, tmp_path)
    events = audit / EVENTS_FILE
    edited = events.read_bytes().replace(b'{"', b'{ "', 1)
    events.write_bytes(edited)
    assert "changed after they were signed" in refusal(home)
    bad = letterlock(home, "log", "recover", "--reason", "x", "--keep-tail", check=False)
    assert bad.returncode != 0 and "restore events.jsonl from a backup" in bad.stderr
    assert events.read_bytes() == edited
