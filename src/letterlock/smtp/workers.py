"""MX worker processes (``smtp.workers`` >= 2), seen from the main process.

One Python process serves SMTP on one core: its event loop and the sealing threads
share one interpreter lock. With ``smtp.workers = N`` the main process keeps its MX
listener and starts N-1 workers (``python -m letterlock.smtp.worker``) that listen
on the same port (SO_REUSEPORT, the kernel spreads connections). Each worker opens
its own application on the same HOME: cells are SQLite (one writer at a time across
processes, WAL) and append-only packs locked while appending, so copies stay
durable before 250 in every process. A worker whose parent dies sees its stdin
close and stops; a worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from letterlock.config import Config
from letterlock.errors import StorageError

log = logging.getLogger("letterlock.smtp")

READY = "letterlock-mx-worker ready"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
RESTART_DELAY_S = 1.0


def run_dir(config: Config) -> Path:
    """Where processes of one server leave sockets for each other."""
    return config.control_dir / "run"


class MxWorkers:
    def __init__(self, home: Path, bind: str, port: int, count: int) -> None:
        self._home = home
        self._bind = bind
        self._port = port
        self._count = count
        self._procs: list[asyncio.subprocess.Process | None] = [None] * count
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.returncode is None]

    async def start(self) -> None:
        """Start every worker and return once each is listening. Raises StorageError
        if one does not come up."""
        started = await asyncio.gather(*(self._spawn() for _ in range(self._count)),
                                       return_exceptions=True)
        for i, result in enumerate(started):
            if isinstance(result, asyncio.subprocess.Process):
                self._procs[i] = result
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise StorageError(f"MX worker did not start: {failed[0]}")
        self._supervisors = [asyncio.create_task(self._supervise(i))
                             for i in range(self._count)]

    async def _spawn(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "letterlock.smtp.worker", "--home", str(self._home),
            "--bind", self._bind, "--port", str(self._port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=os.environ.copy())
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        raise StorageError(f"exited with status {await proc.wait()}")
                    if line.decode(errors="replace").strip() == READY:
                        return proc
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise

    async def _supervise(self, index: int) -> None:
        while not self._stopping:
            proc = self._procs[index]
            if proc is None:
                try:
                    self._procs[index] = proc = await self._spawn()
                except (StorageError, OSError, TimeoutError) as exc:
                    log.warning("MX worker did not restart: %s", exc)
                    await asyncio.sleep(RESTART_DELAY_S)
                    continue
            status = await proc.wait()
            self._procs[index] = None
            if not self._stopping:
                log.warning("MX worker %d exited with status %s; restarting", proc.pid,
                            status)
                await asyncio.sleep(RESTART_DELAY_S)

    async def stop(self) -> None:
        """Stop every worker: each stops accepting, finishes the messages it is
        storing, and exits; one that takes too long is killed."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        for task in self._supervisors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        procs = [p for p in self._procs if p is not None and p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                log.warning("MX worker %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        self._procs = [None] * self._count
