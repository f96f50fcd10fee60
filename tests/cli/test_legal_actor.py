"""Every ``letterlock legal`` command that acts on a matter records a named actor in
the audit log: ``--actor NAME``, else ``LETTERLOCK_OPERATOR``, else the login name of
whoever runs it (never an anonymous "operator")."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from letterlock.app import open_app
from letterlock.audit.events import EventFinder, EventType
from letterlock.cli.main import cli
from support.env import make_config

ACTING = ("file", "decide", "close", "lift-gag", "extend-gag", "inform-requested",
          "approve", "reject-approval")


def test_every_acting_legal_command_takes_an_actor() -> None:
    runner = CliRunner()
    for command in ACTING:
        shown = runner.invoke(cli, ["legal", command, "--help"])
        assert shown.exit_code == 0 and "--actor" in shown.output, command


def test_the_audit_log_names_who_ran_each_step(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_ITERATIONS", "1")
    monkeypatch.setenv("LETTERLOCK_LEGAL_FOUR_EYES", "off")
    monkeypatch.delenv("LETTERLOCK_OPERATOR", raising=False)
    home = tmp_path / "home"
    runner = CliRunner()

    def ok(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        result = runner.invoke(cli, ["--home", str(home), *args], input=stdin, env=env)
        assert result.exit_code == 0, (args, result.output)
        return str(result.stdout)

    ok("init")
    ok("user", "add", "bob@example.test", "--region", "us-east", "--password-stdin",
       stdin="bob's password, long enough\n")
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "received_at": "2026-01-05T09:00:00Z", "served_at": "2026-01-05T09:00:00Z",
        "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                   "judge_validated": True, "verified": True},
        "instrument": "us-subpoena", "action": "produce", "categories": ["subscriber"],
        "targets": ["bob@example.test"], "emergency": False,
        "gag": {"until": "2030-01-01T00:00:00Z"}, "renewal_of_served_at": None}))
    matter = ok("legal", "file", str(request), "--actor", "lou").strip()
    ok("legal", "decide", matter, "--accept", env={"LETTERLOCK_OPERATOR": "lee"})
    ok("legal", "extend-gag", matter, "--until", "2031-01-01", "--actor", "kim")
    ok("legal", "lift-gag", matter, "--actor", "kim")
    ok("legal", "close", matter)  # neither: the login name

    async def actors() -> dict[str, set[str]]:
        async with open_app(make_config(home)) as app:
            finder = app.audit
            assert isinstance(finder, EventFinder)
            out: dict[str, set[str]] = {}
            for e in await finder.events_since(0):
                if e.matter == matter:
                    out.setdefault(str(e.type), set()).add(e.actor)
            return out

    found = asyncio.run(actors())
    assert found[EventType.LEGAL_MATTER_FILED] == {"lou"}
    assert found[EventType.LEGAL_MATTER_DECIDED] == {"lee"}
    assert found[EventType.LEGAL_GAG_EXTENDED] == {"kim"}
    assert found[EventType.LEGAL_GAG_LIFTED] == {"kim"}
    assert found[EventType.LEGAL_MATTER_CLOSED] == {getpass.getuser()}
    assert not any("operator" in names for names in found.values())
