"""`letterlock operator add/list/passwd/remove`: roles checked, password read from
stdin and stored only as an Argon2id hash, tokens ended by a new password or removal,
an audit event for each change."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from letterlock import app as app_mod
from letterlock import config as config_mod
from letterlock.audit.log import open_reader
from letterlock.audit.records import decode
from letterlock.cli.main import cli
from letterlock.errors import AuthenticationFailed
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


def test_operator_remove_and_passwd_end_api_access(tmp_path: Path) -> None:
    runner = CliRunner(env={**FAST_KDF_ENV, "LETTERLOCK_HOME": ""})
    home = tmp_path / "home"

    def call(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli, ["--home", str(home), *args], input=stdin)

    async def token_for(name: str, password: str) -> str:
        async with app_mod.open_app(config_mod.load(home, env=FAST_KDF_ENV)) as app:
            return (await app.operators.issue_token(name, password)).token

    async def works(token: str) -> bool:
        async with app_mod.open_app(config_mod.load(home, env=FAST_KDF_ENV)) as app:
            try:
                await app.operators.check_token(token)
            except AuthenticationFailed:
                return False
            return True

    assert call("init").exit_code == 0
    for name in ("lee", "ada"):
        assert call("operator", "add", name, "--role", "legal", "--password-stdin",
                    stdin=SECRET + "\n").exit_code == 0
    lee_token = asyncio.run(token_for("lee", SECRET))
    ada_token = asyncio.run(token_for("ada", SECRET))
    assert asyncio.run(works(lee_token)) and asyncio.run(works(ada_token))

    # A new password ends the tokens issued under the old one.
    new = "another long secret"
    done = call("operator", "passwd", "Lee", "--password-stdin", stdin=new + "\n")
    assert done.exit_code == 0 and "tokens are revoked" in done.output
    assert not asyncio.run(works(lee_token))
    with pytest.raises(AuthenticationFailed):
        asyncio.run(token_for("lee", SECRET))
    assert asyncio.run(works(asyncio.run(token_for("lee", new))))
    assert call("operator", "passwd", "lee", "--password-stdin",
                stdin="short\n").exit_code == 2

    # Removal: gone from the list, its token refused; others untouched.
    assert call("operator", "remove", "ada").exit_code == 1  # asks; no answer
    removed = call("operator", "remove", "ada", "--yes")
    assert removed.exit_code == 0 and "removed operator ada" in removed.output
    assert not asyncio.run(works(ada_token))
    assert [o["name"] for o in json.loads(call("operator", "list", "--json").output)] \
        == ["lee"]
    missing = call("operator", "remove", "ada", "--yes")
    assert missing.exit_code == 4 and "no operator ada" in missing.output

    with open_reader(home / "control" / "audit") as log:
        events = [decode(leaf).event for _, leaf in log.iter_leaves(0, log.size)]
    assert [(e.type, dict(e.details)) for e in events if e is not None
            and e.type in ("admin:operator:removed", "admin:operator:password-set")] == [
        ("admin:operator:password-set", {"operator": "lee"}),
        ("admin:operator:removed", {"operator": "ada"})]
