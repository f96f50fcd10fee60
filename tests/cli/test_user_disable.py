"""`letterlock user disable|enable`: a disabled account's password no longer opens it
(here through `user passwd`, which checks the old password like every login), enabled
again it does (the audit records are checked in tests/http/test_console.py)."""

from __future__ import annotations

from pathlib import Path

from support.cli import letterlock
from support.env import PASSWORD


def test_a_disabled_account_cannot_log_in_until_enabled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", "bob@example.test", "--region", "us-east",
               "--password-stdin", stdin=PASSWORD + "\n")
    out = letterlock(home, "user", "disable", "bob@example.test").stdout
    assert "disabled bob@example.test" in out
    refused = letterlock(home, "user", "passwd", "bob@example.test",
                         stdin=f"{PASSWORD}\nsecond password\n", check=False)
    assert refused.returncode == 6 and "account disabled" in refused.stderr
    again = letterlock(home, "user", "disable", "bob@example.test", check=False)
    assert again.returncode != 0 and "already disabled" in again.stderr
    letterlock(home, "user", "enable", "bob@example.test")
    letterlock(home, "user", "passwd", "bob@example.test",
               stdin=f"{PASSWORD}\nsecond password\n")
    unknown = letterlock(home, "user", "disable", "nobody@example.test", check=False)
    assert unknown.returncode != 0 and "nobody@example.test" in unknown.stderr
