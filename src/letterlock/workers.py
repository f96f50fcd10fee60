"""Front-end worker processes, seen from the main process of ``letterlock serve``.

One Python process serves on one core: its event loop and its threads share one
interpreter lock. To use every core the main process starts worker processes
(``python -m letterlock.worker``), each with its own event loop, that accept
connections on the same ports as the main process (SO_REUSEPORT: the kernel spreads
connections over every process listening). How many and for what:

- ``smtp.workers`` = M processes accept MX connections (0 or 1: the main alone);
- ``imap.processes`` = I processes accept IMAP and IMAPS connections (0: one per CPU
  available to the server);
- so ``max(M, I) - 1`` workers run; worker ``i`` serves MX if ``i < M - 1`` and IMAP
  if ``i < I - 1``. Submission, LMTP, HTTP, the outbound queue and the legal clock
  stay in the main process.

Each worker opens its own application on the same HOME: cells are SQLite (one writer
at a time across processes, WAL) and append-only packs locked while appending, so
mail is durable before 250 or OK in every process. The processes tell each other of
mailbox changes over the peer bus (:mod:`letterlock.services.peers`). A worker whose
parent dies sees its stdin close and stops; a worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from letterlock.config import Config
from letterlock.errors import ConfigError, StorageError
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger("letterlock.workers")

READY = "letterlock-worker ready"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
RESTART_DELAY_S = 1.0


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and
    ``taskset`` narrow), not every CPU of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ProcessPlan:
    """How many processes accept MX and IMAP connections (the main one included)."""

    mx: int
    imap: int

    @classmethod
    def from_config(cls, config: Config) -> ProcessPlan:
        if config.imap.processes < 0:
            raise ConfigError(f"imap.processes must be 0 or more, got {config.imap.processes}")
        imap = config.imap.processes or available_cpus()
        return cls(mx=max(1, config.smtp.workers), imap=imap)

    @property
    def event_loops(self) -> int:
        """Processes of the server with an event loop: the main one and the workers."""
        return max(self.mx, self.imap)

    @property
    def workers(self) -> int:
        return self.event_loops - 1

    def serves_mx(self, worker: int) -> bool:
        return worker < self.mx - 1

    def serves_imap(self, worker: int) -> bool:
        return worker < self.imap - 1


@dataclass(frozen=True)
class Ports:
    """The shared ports the workers listen on."""

    bind: str
    mx: int
    imap: int
    imaps: int


def check_port_unshared(bind: str, port: int) -> None:
    """Raise ConfigError if something already listens on ``bind:port``. A socket with
    SO_REUSEPORT would silently share the port with another program of the same user
    that set it too (a second server left running): bind once without it first."""
    try:
        infos = socket.getaddrinfo(bind or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {bind}:{port}: {exc}") from exc
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise ConfigError(f"cannot start a listener: {bind}:{port}: {reason}"
                                  ) from exc


class FrontEndWorkers:
    """Starts, watches and stops the workers of one :class:`ProcessPlan`."""

    def __init__(self, home: Path, plan: ProcessPlan, ports: Ports) -> None:
        self._home = home
        self._plan = plan
        self._ports = ports
        self._count = plan.workers
        self._procs: list[asyncio.subprocess.Process | None] = [None] * self._count
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.returncode is None]

    def _argv(self, index: int) -> list[str]:
        argv = [sys.executable, "-m", "letterlock.worker", "--home", str(self._home),
                "--bind", self._ports.bind]
        if self._plan.serves_mx(index):
            argv += ["--mx-port", str(self._ports.mx)]
        if self._plan.serves_imap(index):
            argv += ["--imap-port", str(self._ports.imap),
                     "--imaps-port", str(self._ports.imaps)]
        return argv

    async def start(self) -> None:
        """Start every worker and return once each is listening. Raises StorageError
        if one does not come up."""
        started = await asyncio.gather(*(self._spawn(i) for i in range(self._count)),
                                       return_exceptions=True)
        for i, result in enumerate(started):
            if isinstance(result, asyncio.subprocess.Process):
                self._procs[i] = result
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise StorageError(f"worker process did not start: {failed[0]}")
        self._supervisors = [asyncio.create_task(self._supervise(i))
                             for i in range(self._count)]

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *self._argv(index), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=os.environ.copy())
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
                    self._procs[index] = proc = await self._spawn(index)
                except (StorageError, OSError, TimeoutError) as exc:
                    log.warning("worker %d did not restart: %s", index, exc)
                    await asyncio.sleep(RESTART_DELAY_S)
                    continue
            status = await proc.wait()
            self._procs[index] = None
            if not self._stopping:
                event(LogEvent.WORKER_EXITED, worker_pid=proc.pid, status=status,
                      action="restarting")
                await asyncio.sleep(RESTART_DELAY_S)

    async def stop(self) -> None:
        """Stop every worker: each stops accepting, finishes the messages it is
        storing, tells its IMAP clients BYE, and exits; one that takes too long is
        killed."""
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
                log.warning("worker process %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        self._procs = [None] * self._count
