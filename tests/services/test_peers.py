"""The peer bus between the processes of one server (services/peers.py): real
processes, real Unix datagram sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from letterlock.services.peers import MAX_PAYLOAD, PeerBus

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "peer_process.py"


class Peer:
    """A child process on the bus (tests/support/peer_process.py)."""

    def __init__(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        self.proc = proc
        self.pid = pid

    async def line(self, timeout: float = 5.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, "peer process exited"
        return raw.decode().strip()

    async def send(self, payload: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"send {payload}\n".encode())
        await self.proc.stdin.drain()
        assert await self.line() == "sent"


@asynccontextmanager
async def peer(run_dir: Path) -> AsyncIterator[Peer]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), str(run_dir), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()
        assert ready[:1] == ["ready"], ready
        yield Peer(proc, int(ready[1]))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def collect(bus: PeerBus, kind: bytes = b"t") -> list[bytes]:
    got: list[bytes] = []
    bus.subscribe(kind, got.append)
    return got


async def test_a_broadcast_is_waiting_for_drain_when_it_returns(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    got = collect(bus)
    bus.start()
    try:
        async with peer(tmp_path) as child:
            # The child's broadcast returned before it printed "sent": drain() here,
            # without giving the event loop a turn, must already find the datagram.
            await child.send("one")
            bus.drain()
            assert got == [b"one"]
            bus.broadcast(b"t", b"two")
            assert await child.line() == "got two"
            bus.broadcast(b"other", b"ignored")
            await child.send("three")
            bus.drain()
            assert got == [b"one", b"three"]
    finally:
        bus.close()


async def test_never_to_itself(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    got = collect(bus)
    bus.start()
    try:
        bus.broadcast(b"t", b"echo?")
        await asyncio.sleep(0.05)
        bus.drain()
        assert got == []
    finally:
        bus.close()


async def test_a_new_process_announces_itself(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    bus.start()
    try:
        bus.broadcast(b"t", b"to nobody")  # lists (and caches) an empty directory
        async with peer(tmp_path) as child:
            bus.drain()  # its hello
            assert bus.peer_pids == [child.pid]
            bus.broadcast(b"t", b"hello child")
            assert await child.line() == "got hello child"
            assert child.proc.stdin is not None
            child.proc.stdin.write(b"quit\n")
            await child.proc.wait()
            bus.drain()  # its goodbye
            assert bus.peer_pids == []
    finally:
        bus.close()
    assert list((tmp_path / "peers").iterdir()) == []


async def test_the_socket_of_a_killed_process_is_removed(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    bus.start()
    try:
        async with peer(tmp_path) as child:
            bus.drain()
            os.kill(child.pid, signal.SIGKILL)
            await child.proc.wait()
            assert (tmp_path / "peers" / f"{child.pid}.sock").exists()
            bus.broadcast(b"t", b"anyone?")  # refused: nobody holds that socket
            assert not (tmp_path / "peers" / f"{child.pid}.sock").exists()
            assert bus.peer_pids == []
    finally:
        bus.close()


async def test_a_process_off_the_bus_can_still_broadcast(tmp_path: Path) -> None:
    """A command run beside `serve` (say `mail import`) tells the server's processes."""
    async with peer(tmp_path) as child:
        outsider = PeerBus(tmp_path)
        try:
            outsider.broadcast(b"t", b"from the command line")
            assert await child.line() == "got from the command line"
        finally:
            outsider.close()


async def test_permissions(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    bus.start()
    try:
        peers = tmp_path / "peers"
        assert stat.S_IMODE(peers.stat().st_mode) == 0o700
        [sock] = list(peers.iterdir())
        assert sock.name == f"{os.getpid()}.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    finally:
        bus.close()


async def test_under_a_home_too_deep_for_a_socket_path(tmp_path: Path) -> None:
    run = tmp_path.joinpath(*["deep" * 10] * 4, "run")
    bus = PeerBus(run)
    got = collect(bus)
    bus.start()
    try:
        [marker] = list((run / "peers").iterdir())
        assert not stat.S_ISSOCK(marker.stat().st_mode)  # the socket is abstract
        async with peer(run) as child:
            await child.send("deep")
            bus.drain()
            assert got == [b"deep"]
            bus.broadcast(b"t", b"back")
            assert await child.line() == "got back"
            os.kill(child.pid, signal.SIGKILL)
            await child.proc.wait()
            bus.broadcast(b"t", b"anyone?")
            assert [p.name for p in (run / "peers").iterdir()] == [marker.name]
    finally:
        bus.close()


async def test_a_busy_receiver_gets_everything_late_not_never(tmp_path: Path) -> None:
    """A stopped receiver's queue fills (a few datagrams): the rest wait in the
    sender's backlog and follow, in order, once it reads again."""
    bus = PeerBus(tmp_path)
    bus.start()
    try:
        async with peer(tmp_path) as child:
            bus.drain()
            os.kill(child.pid, signal.SIGSTOP)
            try:
                for i in range(100):
                    bus.broadcast(b"t", b"m%d" % i)
            finally:
                os.kill(child.pid, signal.SIGCONT)
            assert [await child.line() for _ in range(100)] == [f"got m{i}"
                                                                for i in range(100)]
    finally:
        bus.close()


def test_oversized_payloads_and_reserved_kinds_are_refused(tmp_path: Path) -> None:
    bus = PeerBus(tmp_path)
    with pytest.raises(ValueError, match="split"):
        bus.broadcast(b"t", b"x" * (MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        bus.subscribe(b"peer-hello", lambda _: None)
    with pytest.raises(ValueError):
        bus.broadcast(b"", b"")
    bus.broadcast(b"t", b"x" * MAX_PAYLOAD)  # no peers: nothing happens
    bus.close()
