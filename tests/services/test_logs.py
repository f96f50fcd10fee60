"""Structured log lines (services/operations/logs.py): one line per record, logfmt or
JSON, addresses full or as keyed pseudonyms, context fields per task, audit events
without their details."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from letterlock import config as config_mod
from letterlock.audit.events import AuditEvent, EventType
from letterlock.cli.main import cli
from letterlock.errors import ConfigError
from letterlock.services.operations import log_events, logs
from letterlock.services.operations.log_events import LogEvent, bind, event
from support.env import make_config

ADDRESS = "Alice.Example@Example.TEST"


@pytest.fixture
def captured(home: Path) -> Iterator[tuple[io.StringIO, config_mod.Config]]:
    stream = io.StringIO()
    config = make_config(home, LETTERLOCK_LOG_ADDRESSES="full")
    undo = logs.configure(config, stream)
    try:
        yield stream, config
    finally:
        undo()


def configured(home: Path, stream: io.StringIO, **env: str) -> config_mod.Config:
    return make_config(home, **{f"LETTERLOCK_LOG_{k.upper()}": v for k, v in env.items()})


def lines(stream: io.StringIO) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()  # lines logged on an event loop wait for the end of its turn
    return stream.getvalue().splitlines()


def parse_logfmt(line: str) -> dict[str, str]:
    """A logfmt line into its pairs (quoted values JSON-unescaped)."""
    out: dict[str, str] = {}
    for match in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)(?: |$)', line):
        key, raw = match.group(1), match.group(2)
        out[key] = json.loads(raw) if raw.startswith('"') else raw
    assert " ".join(f"{k}=" for k in out) and line.startswith("ts="), line
    return out


def test_an_event_is_one_logfmt_line_with_fields_in_order(
        captured: tuple[io.StringIO, config_mod.Config]) -> None:
    stream, _ = captured
    event(LogEvent.LOGIN_FAILED, ip="203.0.113.9", user=ADDRESS, proto="imap")
    [line] = lines(stream)
    assert re.fullmatch(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warning "
                        r"event=auth:login:failed ip=203\.0\.113\.9 "
                        r"user=Alice\.Example@Example\.TEST proto=imap pid=\d+", line), line


def test_values_that_could_break_a_line_are_quoted_and_escaped(
        captured: tuple[io.StringIO, config_mod.Config]) -> None:
    stream, _ = captured
    nasty = 'a b\n level=error event=auth:login:ok "\\ \u2028'
    event(LogEvent.MESSAGE_NOT_STORED, reason=nasty, region="", rcpts=3, ok=True,
          seconds=0.000123456)
    [line] = lines(stream)
    pairs = parse_logfmt(line)
    assert pairs["reason"] == nasty
    assert pairs["region"] == ""
    assert (pairs["rcpts"], pairs["ok"], pairs["seconds"]) == ("3", "true", "0.000123456")
    assert pairs["event"] == "mail:message:not-stored"


def test_json_lines_are_one_object_each(home: Path) -> None:
    stream = io.StringIO()
    undo = logs.configure(configured(home, stream, format="json", addresses="full"), stream)
    try:
        event(LogEvent.MESSAGE_ACCEPTED, sender="", rcpts=2, size=1234)
        event(LogEvent.SMTP_REJECTED, code="550", status="5.1.1", command="RCPT",
              reason="two\nlines")
    finally:
        undo()
    first, second = (json.loads(line) for line in lines(stream))
    assert list(first)[:3] == ["ts", "level", "event"]
    assert first["sender"] == "<>" and first["rcpts"] == 2 and first["size"] == 1234
    assert second["code"] == "550" and second["reason"] == "two\nlines"


def test_hashed_addresses_are_stable_keyed_pseudonyms(home: Path) -> None:
    stream = io.StringIO()
    config = configured(home, stream, addresses="hashed")
    undo = logs.configure(config, stream)
    try:
        event(LogEvent.MESSAGE_STORED, rcpt=ADDRESS)
        event(LogEvent.LOGIN_OK, user=ADDRESS.lower())
        logging.getLogger("letterlock.delivery").warning(
            "%s: end-to-end encryption failed", ADDRESS)
    finally:
        undo()
    text = stream.getvalue()
    assert ADDRESS.lower() not in text.lower()
    assert "alice.example" not in text.lower()
    stored, login, free = lines(stream)
    pseudonym = parse_logfmt(stored)["rcpt"]
    assert re.fullmatch(r"~[0-9a-f]{16}@example\.test", pseudonym)
    assert parse_logfmt(login)["user"] == pseudonym  # one address, one pseudonym
    assert pseudonym in parse_logfmt(free)["msg"]  # free-form messages too
    assert logs.pseudonym(config, ADDRESS) == pseudonym
    shown = CliRunner().invoke(cli, ["--home", str(home), "hash-address", ADDRESS])
    assert shown.exit_code == 0 and shown.output == f"{ADDRESS}\t{pseudonym}\n", shown.output
    key = home / "control" / logs.PSEUDONYM_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    # Another server (another key) gives another pseudonym.
    assert logs.Pseudonyms(b"k" * 32)(ADDRESS) != pseudonym


def test_a_login_name_that_is_no_address_is_never_written(
        captured: tuple[io.StringIO, config_mod.Config]) -> None:
    """A password typed in the name field must not reach the log."""
    stream, _ = captured
    event(LogEvent.LOGIN_FAILED, ip="192.0.2.1", user="hunter2 my secret")
    event(LogEvent.LOGIN_FAILED, ip="192.0.2.1", user="no-at-sign-here")
    assert [parse_logfmt(line)["user"] for line in lines(stream)] == ["?", "?"]
    assert "hunter2" not in stream.getvalue() and "no-at-sign" not in stream.getvalue()


async def test_lines_of_one_loop_turn_are_written_together(
        captured: tuple[io.StringIO, config_mod.Config]) -> None:
    stream, _ = captured
    writes: list[str] = []
    real_write = stream.write
    stream.write = lambda text: writes.append(text) or real_write(text)  # type: ignore[method-assign]
    event(LogEvent.SMTP_CONNECTED, ip="192.0.2.1")
    event(LogEvent.SMTP_DISCONNECTED, ip="192.0.2.1")
    assert stream.getvalue() == ""
    await asyncio.sleep(0)
    assert len(writes) == 1 and len(stream.getvalue().splitlines()) == 2


async def test_bound_fields_follow_their_task_only(
        captured: tuple[io.StringIO, config_mod.Config]) -> None:
    stream, _ = captured

    async def session(sid: str) -> None:
        bind(s=sid, proto="mx")
        await asyncio.sleep(0)
        bind(queue=f"Q{sid}")
        event(LogEvent.MESSAGE_STORED, rcpt=ADDRESS, queue=None)

    await asyncio.gather(session("1"), session("2"))
    event(LogEvent.SERVER_STOPPED)
    one, two, last = (parse_logfmt(line) for line in lines(stream))
    assert (one["s"], one["queue"], two["s"], two["queue"]) == ("1", "Q1", "2", "Q2")
    assert "s" not in last and "queue" not in last


def test_levels_filter_and_debug_events_stay_out_at_info(home: Path) -> None:
    stream = io.StringIO()
    undo = logs.configure(configured(home, stream, level="warning"), stream)
    try:
        event(LogEvent.LOGIN_OK, ip="192.0.2.1")
        event(LogEvent.SEALED, seconds=0.001)
        event(LogEvent.LOGIN_FAILED, ip="192.0.2.1")
        assert not log_events.enabled(LogEvent.SEALED)
    finally:
        undo()
    assert [parse_logfmt(line)["event"] for line in lines(stream)] == ["auth:login:failed"]


def test_without_configuration_events_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # A command-line tool: no last-resort "auth:login:failed" on the terminal.
    event(LogEvent.LOGIN_FAILED, ip="192.0.2.1")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("option", "value"), [("format", "xml"), ("level", "loud"),
                                              ("addresses", "partial")])
def test_unknown_log_options_are_refused(home: Path, option: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"log.{option}"):
        logs.configure(configured(home, io.StringIO(), **{option: value}), io.StringIO())


async def test_audit_events_are_logged_without_their_details(
        captured: tuple[io.StringIO, config_mod.Config], tmp_path: Path) -> None:
    stream, _ = captured
    audit = logs.open_logged_audit(tmp_path / "audit")
    now = datetime.now(UTC)
    await audit.record(AuditEvent(EventType.LEGAL_MATTER_FILED, "lee", now, account=ADDRESS,
                                  matter="M-1", details=(("request", "Case-Content-X"),)))
    await audit.record(AuditEvent(EventType.LEGAL_HOLD_PLACED, "lee", now, account=ADDRESS,
                                  matter="M-1", sealed_until=now + timedelta(days=30)))
    await audit.close()
    filed, sealed = (parse_logfmt(line) for line in lines(stream))
    assert (filed["event"], filed["actor"], filed["matter"], filed["index"]) == (
        "legal:matter:filed", "lee", "M-1", "0")
    assert filed["account"] == ADDRESS
    assert "Case-Content-X" not in stream.getvalue()
    # Under a non-disclosure order: no account, as in the audit log's commitment.
    assert "account" not in sealed and sealed["sealed"] == "true"
    assert sealed["index"] == "1" and audit.log.size == 2
