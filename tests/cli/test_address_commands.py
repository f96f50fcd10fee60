"""`letterlock alias`, `group`, `domain alias`, `domain catch-all` and `user
grant-send-as`, run as a user would (a subprocess on a real HOME): what they print,
their one-line errors and exit codes, and that the links they make are stored in the
account's region only (issue 16 point 1)."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import letterlock
from support.env import PASSWORD


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    letterlock(home, "init", "--domain", "example.org")
    letterlock(home, "user", "add", "alice@example.org", "--region", "us-east",
               "--password-stdin", stdin=PASSWORD + "\n")
    letterlock(home, "user", "add", "bob@example.org", "--region", "eu-dublin",
               "--password-stdin", stdin=PASSWORD + "\n")
    return home


def test_address_commands_end_to_end(tmp_path: Path) -> None:
    home = _home(tmp_path)
    out = letterlock(home, "alias", "add", "Sales@Example.org", "alice@example.org").stdout
    assert out == "added alias sales@example.org -> alice@example.org\n"
    letterlock(home, "group", "add", "team@example.org", "alice@example.org")
    letterlock(home, "group", "add", "team@example.org", "bob@example.org")
    assert letterlock(home, "group", "members", "team@example.org").stdout.split() == [
        "alice@example.org", "bob@example.org"]
    letterlock(home, "domain", "alias", "add", "alias.example", "example.org")
    assert letterlock(home, "domain", "alias", "list").stdout == "alias.example\texample.org\n"
    letterlock(home, "domain", "catch-all", "set", "example.org", "bob@example.org")
    letterlock(home, "user", "grant-send-as", "alice@example.org", "@other.example")
    assert letterlock(home, "user", "send-as", "alice@example.org").stdout == "@other.example\n"
    listed = json.loads(letterlock(home, "alias", "list", "--json").stdout)
    assert listed == [
        {"address": "@example.org", "kind": "catch-all", "targets": ["bob@example.org"]},
        {"address": "sales@example.org", "kind": "alias", "targets": ["alice@example.org"]},
        {"address": "team@example.org", "kind": "group",
         "targets": ["alice@example.org", "bob@example.org"]}]
    # Region pinning: who an address leads to is in that account's region only.
    us = (home / "regions" / "us-east" / "addresses.sqlite3").read_bytes()
    eu = (home / "regions" / "eu-dublin" / "addresses.sqlite3").read_bytes()
    control = (home / "control" / "addresses.sqlite3").read_bytes()
    assert b"alice@example.org" in us and b"alice@example.org" not in eu
    assert b"bob@example.org" in eu and b"bob@example.org" not in us
    assert b"alice@" not in control and b"bob@" not in control
    letterlock(home, "group", "remove", "team@example.org", "bob@example.org")
    letterlock(home, "domain", "catch-all", "remove", "example.org")
    letterlock(home, "alias", "remove", "sales@example.org")
    letterlock(home, "group", "remove", "team@example.org", "--yes")
    assert letterlock(home, "alias", "list").stdout == ""


def test_address_command_errors_are_one_line(tmp_path: Path) -> None:
    home = _home(tmp_path)
    letterlock(home, "alias", "add", "sales@example.org", "alice@example.org")
    letterlock(home, "domain", "alias", "add", "alias.example", "example.org")
    cases = [
        (("alias", "add", "sales@example.org", "bob@example.org"), "sales@example.org exists"),
        (("alias", "add", "bob@example.org", "alice@example.org"), "is an account"),
        (("alias", "add", "x@elsewhere.example", "alice@example.org"), "not hosted"),
        (("alias", "add", "x@alias.example", "alice@example.org"), "is a domain alias"),
        (("alias", "add", "x@example.org", "nobody@example.org"), "no account"),
        (("alias", "add", "not an address", "alice@example.org"), "invalid address"),
        (("user", "add", "sales@example.org", "--region", "us-east", "--password-stdin"),
         "is an alias or group address"),
        (("group", "members", "sales@example.org"), "no group"),
        (("domain", "alias", "add", "example.org", "example.org"), "is a hosted domain"),
        (("domain", "catch-all", "set", "elsewhere.example", "bob@example.org"),
         "not hosted"),
        (("user", "revoke-send-as", "alice@example.org", "bob@example.org"), "no grant"),
    ]
    for args, words in cases:
        proc = letterlock(home, *args, stdin=PASSWORD + "\n", check=False)
        assert proc.returncode != 0, args
        assert words in proc.stderr and len(proc.stderr.splitlines()) == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
