"""The real ManageSieve client sieve-connect (Debian package ``sieve-connect``)
against our listener: STARTTLS, AUTHENTICATE PLAIN, upload, activate, list and
download a script (issue 16 point 3)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from managesieve.conftest import ALICE, PASSWORD, Sieve

pytestmark = pytest.mark.skipif(shutil.which("sieve-connect") is None,
                                reason="sieve-connect is not installed (Debian: sieve-connect)")

SCRIPT = ('require ["fileinto"];\r\n'
          'if header :contains "subject" "[team]" { fileinto "Team"; }\r\n')


def sieve_connect(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    read, write = os.pipe()
    os.write(write, PASSWORD.encode() + b"\n")
    os.close(write)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(port), "--user", ALICE,
             "--passwordfd", str(read), "--notlsverify", "--authmech", "PLAIN",
             "--noclearchan", *args],
            pass_fds=(read,), capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.close(read)


async def test_upload_activate_list_download(sieve_server: Sieve, tmp_path: Path) -> None:
    local = tmp_path / "team.sieve"
    local.write_text(SCRIPT, newline="")
    port = sieve_server.port
    up = await asyncio.to_thread(sieve_connect, port, "--upload", "--localsieve", str(local),
                                 "--remotesieve", "team")
    assert up.returncode == 0, up.stderr
    act = await asyncio.to_thread(sieve_connect, port, "--activate", "--remotesieve", "team")
    assert act.returncode == 0, act.stderr
    listed = await asyncio.to_thread(sieve_connect, port, "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ['"team" ACTIVE'], listed.stdout
    back = tmp_path / "back.sieve"
    down = await asyncio.to_thread(sieve_connect, port, "--download", "--remotesieve", "team",
                                   "--localsieve", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == SCRIPT.encode()
    # What sieve-connect stored is what the filter service holds (and is active).
    session = await sieve_server.app.accounts.authenticate(ALICE, PASSWORD)
    assert await sieve_server.app.filters.get(session, "team") == SCRIPT
    assert [(s.name, s.active) for s in await sieve_server.app.filters.list(session.ref)] \
        == [("team", True)]
