"""Acceptance: SIGKILL during a burst of appends loses no acknowledged message and
leaves no half-written message visible."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from support.env import FAST_KDF_ENV, PASSWORD, make_config

TESTS = Path(__file__).parent


async def test_sigkill_during_append_burst(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)

    env = {**os.environ, **FAST_KDF_ENV,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, str(TESTS / "support" / "append_burst.py"), str(home),
         "bob@example.test", "16", "400"], stdout=subprocess.PIPE, text=True, env=env)
    acked: list[int] = []
    assert child.stdout is not None
    for line in child.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) >= 300:
            break
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()  # lines written before the kill are acknowledgements too
    acked += [int(n) for n in re.findall(r"ACK (\d+)", rest)]
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(acked) < 16 * 400, "the burst finished before the kill: nothing tested"

    async with open_app(config) as app:
        session = await app.accounts.authenticate("bob@example.test", PASSWORD)
        inbox = await app.mailboxes.get_mailbox(session, "INBOX")
        msgs = await app.mailboxes.messages(session, inbox.id)
        # Every visible message opens and authenticates completely.
        bodies = await app.mailboxes.bodies(session, msgs)
        found = []
        for msg in msgs:
            body = bodies[msg.uid]
            match = re.search(rb"Subject: burst (\d+)", body)
            assert match is not None
            n = int(match.group(1))
            assert body.count(f"payload {n}\r\n".encode()) == 50
            assert len(body) == msg.size
            found.append(n)
        assert len(found) == len(set(found)), "a message is visible twice"
        missing = set(acked) - set(found)
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
        # The store accepts new work after the crash.
        await app.mailboxes.append(session.ref, "INBOX", b"Subject: after\r\n\r\nok\r\n")
