"""`letterlock quota set|show|clear` as an operator runs them (issue 16 point 2)."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import letterlock
from support.env import PASSWORD

USER = "ann@example.test"


def test_set_show_and_clear(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", USER, "--region", "us-east", "--password-stdin",
               stdin=PASSWORD + "\n")
    out = letterlock(home, "quota", "set", "@example.test", "--storage", "2G").stdout
    assert "storage 2.0 GiB" in out and "messages unlimited" in out
    letterlock(home, "quota", "set", USER, "--messages", "500")
    shown = json.loads(letterlock(home, "quota", "show", USER, "--json").stdout)
    assert shown == {"address": USER, "region": "us-east", "storage_used": 0,
                     "storage_limit": None, "messages_used": 0, "messages_limit": 500}
    letterlock(home, "quota", "clear", USER)
    shown = json.loads(letterlock(home, "quota", "show", USER, "--json").stdout)
    assert shown["storage_limit"] == 2 << 30 and shown["messages_limit"] is None
    text = letterlock(home, "quota", "show", USER).stdout
    assert "0 bytes of 2.0 GiB (0%)" in text
    bad = letterlock(home, "quota", "set", USER, "--storage", "lots", check=False)
    assert bad.returncode != 0 and "not a size" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
    bad = letterlock(home, "quota", "set", "nobody", "--messages", "5", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
