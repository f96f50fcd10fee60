"""The key cache across real server processes on one HOME, over the real peer bus:
a login in one process serves the next login in another without Argon2id, and a
password change in one drops the entry everywhere (tests/support/key_cache_process.py
plays the other process)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.app import App, start_peers
from letterlock.crypto import keys
from support.env import PASSWORD

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "key_cache_process.py"
BOB = "bob@example.test"
NEW = "a brand new passphrase"


class Other:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def login(self, address: str, password: str) -> tuple[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"login {address} {password}\n".encode())
        await self.proc.stdin.drain()
        outcome, runs = (await asyncio.wait_for(self.proc.stdout.readline(), 20)).split()
        return outcome.decode(), int(runs)


@pytest.fixture
async def other(app: App) -> AsyncIterator[Other]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), str(app.config.home), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert ready[:1] == ["ready"], ready
        yield Other(proc)
    finally:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        await proc.wait()


async def test_entries_and_drops_cross_processes(app: App, other: Other,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    await app.accounts.create(BOB, "us-east", PASSWORD)
    stop = await start_peers(app)
    runs = 0
    real = keys.unwrap_with_password

    def counting(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        nonlocal runs
        runs += 1
        return real(blob, password, key_id)

    monkeypatch.setattr(keys, "unwrap_with_password", counting)
    try:
        await app.accounts.authenticate(BOB, PASSWORD)  # full; the entry is broadcast
        assert runs == 1
        assert await other.login(BOB, PASSWORD) == ("ok", 0)
        assert await other.login(BOB, "wrong password") == ("fail", 1)
        await app.accounts.change_password(BOB, PASSWORD, NEW)
        assert await other.login(BOB, PASSWORD) == ("fail", 1)
        assert await other.login(BOB, NEW) == ("ok", 1)  # full there, and broadcast
        runs = 0
        await app.accounts.authenticate(BOB, NEW)
        assert runs == 0
    finally:
        await stop()
