"""The command line as an operator uses it: every command has --help, bad input gets
one line on stderr and a non-zero exit, good input does what it says."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from letterlock.app import open_app
from letterlock.cli.main import cli
from support.cli import letterlock
from support.env import PASSWORD, make_config


def all_commands() -> list[list[str]]:
    out: list[list[str]] = []

    def walk(group: object, prefix: list[str]) -> None:
        for name, cmd in getattr(group, "commands", {}).items():
            out.append([*prefix, name])
            walk(cmd, [*prefix, name])

    walk(cli, [])
    return out


@pytest.mark.parametrize("words", all_commands(), ids=lambda w: " ".join(w))
def test_every_command_has_help(words: list[str]) -> None:
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_operator_workflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = letterlock(home, "init", "--domain", "mail.test", "--region", "ch-zurich:CH",
                     "--operator-country", "ch").stdout
    assert "created region ch-zurich (CH)" in out
    assert letterlock(home, "region", "list").stdout.split("\n")[0] == "ch-zurich\tCH"
    letterlock(home, "domain", "add", "Other.Test")
    assert letterlock(home, "domain", "list").stdout.split() == ["mail.test", "other.test"]
    assert 'operator_country = "CH"' in (home / "letterlock.toml").read_text()

    add = letterlock(home, "user", "add", "ann@mail.test", "--region", "ch-zurich",
                     "--password-stdin", stdin=PASSWORD + "\n").stdout
    code = add.split("recovery code (shown once, keep it safe): ")[1].strip()
    listed = json.loads(letterlock(home, "user", "list", "--json").stdout)
    assert [(u["address"], u["region"]) for u in listed] == [("ann@mail.test", "ch-zurich")]
    assert listed[0]["created"].startswith("20")

    letterlock(home, "user", "passwd", "ann@mail.test",
               stdin=f"{PASSWORD}\nsecond password\n")
    wrong = letterlock(home, "user", "passwd", "ann@mail.test",
                       stdin=f"{PASSWORD}\nthird password\n", check=False)
    assert wrong.returncode == 6 and wrong.stderr.strip() == "letterlock: authentication failed"
    letterlock(home, "user", "recover", "ann@mail.test", stdin=f"{code}\nafter recovery\n")
    eml = tmp_path / "one.eml"
    eml.write_bytes(b"Subject: hi\n\nhello\n")
    letterlock(home, "mail", "import", "ann@mail.test", str(eml))
    letterlock(home, "mail", "export", "ann@mail.test", "--out", str(tmp_path / "o.mbox"),
               "--password-stdin", stdin="after recovery\n")
    assert b"Subject: hi\nhello" not in (tmp_path / "o.mbox").read_bytes()
    assert b"Subject: hi\n\nhello\n" in (tmp_path / "o.mbox").read_bytes()


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["init", "--region", "nocolon"], "", "must be ID:CC"),
    (["init", "--region", "x:USA"], "", "two-letter"),
    (["init", "--domain", "bad domain"], "", "invalid domain"),
    (["user", "add", "a@example.test", "--region", "mars", "--password-stdin"],
     PASSWORD + "\n", "no region 'mars'"),
    (["user", "add", "a@nowhere.test", "--region", "us-east", "--password-stdin"],
     PASSWORD + "\n", "not hosted"),
    (["user", "add", "a@example.test", "--region", "us-east", "--password-stdin"],
     "", "standard input"),
    (["user", "passwd", "ghost@example.test"], "a-password\nb-password\n",
     "authentication failed"),
    (["mail", "import", "ghost@example.test", "/nonexistent.eml"], "",
     "no account ghost@example.test"),
    (["domain", "add", "example.test"], "", "exists"),
])
def test_bad_input_gets_one_line_and_nonzero_exit(tmp_path: Path, args: list[str],
                                                  stdin: str, message: str) -> None:
    home = tmp_path / "home"
    if args[0] != "init":
        letterlock(home, "init")
    proc = letterlock(home, *args, stdin=stdin, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_commands_on_an_uninitialised_home_say_so(tmp_path: Path) -> None:
    proc = letterlock(tmp_path / "empty", "user", "list", check=False)
    assert proc.returncode == 3 and "letterlock init" in proc.stderr


def test_import_of_a_maildir_keeps_flags(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", "bob@example.test", "--region", "us-east",
               "--password-stdin", stdin=PASSWORD + "\n")
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.host:2,FS").write_bytes(b"Subject: flagged\n\nx\n")
    (maildir / "new" / "2.host").write_bytes(b"Subject: fresh\n\ny\n")
    out = letterlock(home, "mail", "import", "bob@example.test", str(maildir),
                     "--mailbox", "Old/Imported").stdout
    assert "imported 2 message(s)" in out

    async def flags() -> dict[bytes, frozenset[str]]:
        async with open_app(make_config(home)) as app:
            session = await app.accounts.authenticate("bob@example.test", PASSWORD)
            box = await app.mailboxes.get_mailbox(session, "Old/Imported")
            msgs = await app.mailboxes.messages(session, box.id)
            bodies = await app.mailboxes.bodies(session, msgs)
            return {bodies[m.uid].split(b"\r\n")[0]: m.flags for m in msgs}

    assert asyncio.run(flags()) == {b"Subject: flagged": {"\\Flagged", "\\Seen"},
                                    b"Subject: fresh": frozenset()}


def test_domain_add_makes_its_dkim_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "domain", "add", "mail.test")
    assert any((home / "control" / "dkim" / "mail.test").iterdir())
    shown = letterlock(home, "domain", "show", "mail.test").stdout
    assert "_domainkey.mail.test." in shown and "v=DKIM1; k=rsa; p=" in shown


def test_import_and_export_by_an_operator_are_logged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", "bob@example.test", "--region", "us-east",
               "--password-stdin", stdin=PASSWORD + "\n")
    eml = tmp_path / "one.eml"
    eml.write_bytes(b"Subject: hi\n\nhello\n")
    letterlock(home, "mail", "import", "bob@example.test", str(eml))
    letterlock(home, "mail", "export", "bob@example.test", "--out", str(tmp_path / "o.mbox"),
               "--password-stdin", stdin=PASSWORD + "\n")
    events = (home / "control" / "audit" / "events.jsonl").read_text()
    assert "admin:mail:imported" in events and "admin:mail:exported" in events
    assert letterlock(home, "log", "verify").returncode == 0


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = []
        for _ in range(4):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            free.append(s)
        ports = [s.getsockname()[1] for s in free]
        for s in free:
            s.close()
        proc = letterlock(tmp_path / "home", "serve", "--imap-port", str(port),
                          "--smtp-port", str(ports[0]), "--submission-port", str(ports[1]),
                          "--imaps-port", str(ports[2]), "--http-port", str(ports[3]),
                          check=False)
    assert proc.returncode != 0
    # stderr also carries serve's structured log lines (ts=...): the error is one line.
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("ts=")]
    assert len(lines) == 1 and "address already in use" in lines[0], proc.stderr
