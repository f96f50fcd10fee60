"""`letterlock operator add/list`: roles checked, password read from stdin and stored
only as an Argon2id hash, an audit event per operator added."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from letterlock.audit.log import open_reader
from letterlock.audit.records import decode
from letterlock.cli.main import cli
from support.env import FAST_KDF_ENV

SECRET = "a long operator secret"


def test_operator_add_and_list(tmp_path: Path) -> None:
    runner = CliRunner(env={**FAST_KDF_ENV, "LETTERLOCK_HOME": ""})
    home = tmp_path / "home"

    def call(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli, ["--home", str(home), *args], input=stdin)

    assert call("init").exit_code == 0
    added = call("operator", "add", "Root", "--role", "admin", "--password-stdin",
                 stdin=SECRET + "\n")
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "added operator root (admin)"
    assert call("operator", "add", "lee", "--role", "legal", "--password-stdin",
                stdin=SECRET + "\n").exit_code == 0
    bad_role = call("operator", "add", "x", "--role", "king", "--password-stdin",
                    stdin=SECRET + "\n")
    assert bad_role.exit_code == 2 and "king" in bad_role.output
    taken = call("operator", "add", "lee", "--role", "auditor", "--password-stdin",
                 stdin=SECRET + "\n")
    assert taken.exit_code == 5 and "exists" in taken.output
    short = call("operator", "add", "ada", "--role", "auditor", "--password-stdin",
                 stdin="short\n")
    assert short.exit_code == 2 and "at least" in short.output
    bad_name = call("operator", "add", "no spaces", "--role", "auditor", "--password-stdin",
                    stdin=SECRET + "\n")
    assert bad_name.exit_code == 2

    listed = call("operator", "list", "--json")
    assert [(o["name"], o["role"]) for o in json.loads(listed.output)] == \
        [("lee", "legal"), ("root", "admin")]
    assert "root\tadmin\t" in call("operator", "list").output

    with sqlite3.connect(home / "control" / "operators.sqlite3") as db:
        stored = [row[0] for row in db.execute("SELECT password FROM operators")]
    assert all(s.startswith("$argon2id$") and SECRET not in s for s in stored)
    raw = (home / "control" / "operators.sqlite3").read_bytes()
    assert SECRET.encode() not in raw

    with open_reader(home / "control" / "audit") as log:
        events = [decode(leaf).event for _, leaf in log.iter_leaves(0, log.size)]
    added_events = [dict(e.details) for e in events
                    if e is not None and e.type == "admin:operator:added"]
    assert added_events == [{"operator": "root", "role": "admin"},
                            {"operator": "lee", "role": "legal"}]
