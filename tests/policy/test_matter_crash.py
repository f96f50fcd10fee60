"""Regression (issue 14, point 2): a legal matter survives a crash at any point
between its writes. Filing used to be three writes (the matter, its audit event, its
recommendation): a kill between them left a matter with no recommendation, after
which listing matters failed for everyone, or a matter with no audit event.

A child process files, decides and closes a matter, stopping after each durable
write (legal database transaction, audit log append); the test SIGKILLs it there,
once per write, then opens the HOME again and checks that every matter is whole and
that the log holds each of its steps exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from letterlock.app import App, initialise, open_app
from letterlock.audit.store import MerkleLog
from letterlock.cli.main import cli
from letterlock.services.accounts.setup import InitOptions
from letterlock.storage.legal_sqlite import LEGAL_DB, LegalStore
from support.env import FAST_KDF_ENV, PASSWORD, make_config

from .harness import make_request
from .matter_support import (
    MESSAGE,
    Clock,
    add_bob,
    clear_events_of,
    clock,
    log_records,
    make_service,
)

__all__ = ["clock"]

TESTS = Path(__file__).parent.parent
REQUEST = make_request(categories=["subscriber", "content"])
# Under an order until 2100 every event goes in as a commitment, and the notice waits.
GAGGED = make_request(categories=["subscriber", "content"], gag={"until": "2100-01-01"})
# Steps whose events a matter must have logged by its state (one target: one each).
FILED = ["legal:matter:filed", "legal:matter:evaluated"]
EXECUTED = ["legal:matter:decided", "legal:production:executed"]


def _expected(state: str, notices_sent: int) -> Counter[str]:
    out = Counter(FILED)
    if state == "decided":  # told before disclosure: decided, not yet produced
        out.update(EXECUTED[:1])
    if state in ("executed", "notified", "closed"):
        out.update(EXECUTED)
    if notices_sent:
        out.update(["legal:notice:sent"])
    if state == "closed":
        out.update(["legal:matter:closed"])
    return out


def _run_child(home: Path, kill_after: int, request: dict[str, Any],
               *extra: str) -> tuple[bool, list[str]]:
    """Run the steps, SIGKILL after write number ``kill_after``. Returns (killed,
    lines printed)."""
    env = {**os.environ, **FAST_KDF_ENV,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, str(TESTS / "support" / "legal_steps.py"), str(home),
         json.dumps(request), *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env)
    assert child.stdout is not None and child.stdin is not None
    lines: list[str] = []
    killed = False
    for line in child.stdout:
        lines.append(line.strip())
        if line.startswith("WROTE "):
            if int(line.split()[1]) == kill_after:
                child.send_signal(signal.SIGKILL)
                killed = True
                break
            child.stdin.write("\n")
            child.stdin.flush()
    child.wait(60)
    if killed:
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.returncode == 0, lines
    return killed, lines


def _events_of(home: Path, matter: str, gagged: bool) -> Counter[str]:
    """The steps of ``matter`` the log holds: readable ones, or under an order the
    commitments' contents (the operator's sealed copies)."""
    control = make_config(home).control_dir
    if not gagged:
        return Counter(e.type.value for e in clear_events_of(log_records(control), matter))
    with MerkleLog(control / "audit", writable=False) as log:
        readable = clear_events_of(list(log.iter_records()), matter)
        assert readable == [], "a step under the order was logged in the clear"
        return Counter(e.type.value for e in log.events_since(0) if e.matter == matter)


async def _check_whole(home: Path, gagged: bool) -> None:
    """Every matter can be listed and shown, and the log holds each of its steps
    once; then the matter can be taken to its end, each step again logged once."""
    config = make_config(home)
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, cli,
                                     ["--home", str(home), "legal", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    async with open_app(config) as app:
        matters = await app.legal.list_matters()
        assert len(matters) <= 1
        records = log_records(config.control_dir)
        logged = {e.matter for r in records for e in [r.event] if e is not None and e.matter}
        assert logged <= {m.id for m in matters}, "events about a matter that is not stored"
        for matter in matters:
            shown = await app.legal.show(matter.id)
            assert shown.recommendation is not None
            sent = sum(1 for n in shown.notices if n.sent_at is not None)
            kinds = _events_of(home, matter.id, gagged)
            assert kinds == _expected(shown.state, sent), (shown.state, kinds)
            # ...and it can be finished.
            if shown.state == "evaluated":
                shown = await app.legal.decide(matter.id, "counsel")
            await app.legal.tick()
            if shown.state != "closed":
                shown = await app.legal.close(matter.id, "counsel")
            await app.audit.flush()  # type: ignore[attr-defined]
            kinds = _events_of(home, matter.id, gagged)
            assert kinds == _expected("closed", 0 if gagged else 1), kinds
            session = await app.accounts.authenticate("bob@example.test", PASSWORD)
            inbox = await app.mailboxes.get_mailbox(session, "INBOX")
            notices = 0 if gagged else 1
            assert len(await app.mailboxes.messages(session, inbox.id)) == 1 + notices


async def kill_at_each_write(tmp_path: Path, request: dict[str, Any],
                             check: Callable[[Path], Awaitable[None]],
                             *extra: str) -> tuple[int, list[str]]:
    """Run the child on a copy of one HOME (bob with one message) per durable write,
    killed after that write, and ``check`` each HOME left; returns how many runs
    were killed and what the last (whole) run printed."""
    base = tmp_path / "base"
    config = make_config(base)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        ref, _ = await app.accounts.create("bob@example.test", "us-east", PASSWORD)
        await app.delivery.deliver(MESSAGE, [ref])
    kill_after = 1
    while True:
        home = tmp_path / f"kill-{kill_after}"
        shutil.copytree(base, home)
        killed, lines = _run_child(home, kill_after, request, *extra)
        if not killed:
            return kill_after - 1, lines
        await check(home)
        kill_after += 1


@pytest.mark.parametrize("gagged", [False, True], ids=["clear", "under-order"])
async def test_sigkill_between_the_writes_of_a_matter(tmp_path: Path, gagged: bool) -> None:
    async def check(home: Path) -> None:
        await _check_whole(home, gagged)
    kills, lines = await kill_at_each_write(tmp_path, GAGGED if gagged else REQUEST, check)
    assert "STEP closed" in lines
    assert kills >= 6, f"only {kills} writes: the steps did not run as expected"


async def test_matter_left_unevaluated_by_an_earlier_version_is_repaired(
        app: App, clock: Clock) -> None:
    """A HOME where an earlier version crashed between filing and evaluating: the
    matter had no recommendation, and every listing failed. It is evaluated when the
    legal service is first used, and the evaluation is logged."""
    await add_bob(app)
    request = {**REQUEST, "id": "M-legacy"}
    with sqlite3.connect(app.config.control_dir / LEGAL_DB) as db:
        db.execute("INSERT INTO matters (id, filed_at, filed_by, state, request, facts) "
                   "VALUES (?,?,?,?,?,?)", ("M-legacy", clock.now.isoformat(), "counsel",
                                            "received", json.dumps(request), "{}"))
    store = LegalStore(app.config.control_dir, fsync=False)
    try:
        service = make_service(app, store, clock)
        [matter] = await service.list_matters()
        assert matter.state == "evaluated"
        assert matter.recommendation.finding("bob@example.test", "content").outcome == \
            "disclose"
        await app.audit.flush()  # type: ignore[attr-defined]
        kinds = [e.type.value for e in clear_events_of(log_records(app.config.control_dir),
                                                        "M-legacy")]
        assert kinds == ["legal:matter:evaluated"]
    finally:
        await store.close()
