"""The password-derivation queue is fair across client addresses: a flood of guesses
from one address holds at most its share of the slots, a login from another address
starts as soon as one slot frees, and one address's queue is bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

from letterlock.app import App
from letterlock.crypto import keys
from letterlock.errors import AuthenticationFailed, Busy
from letterlock.services.accounts.kdf_queue import KdfRunner, client_key
from support.env import PASSWORD

A, B, C = "198.51.100.7", "203.0.113.9", "192.0.2.33"


class Gates:
    """Slow fake derivations: each records that it started, then waits to be let go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}

    def job(self, name: str) -> threading.Event:
        gate = self._gates[name] = threading.Event()
        return gate

    def work(self, name: str) -> str:
        with self._lock:
            self.started.append(name)
        if not self._gates[name].wait(10):
            raise TimeoutError(name)
        return name

    def release(self, name: str) -> None:
        self._gates[name].set()

    def release_all(self) -> None:
        for gate in self._gates.values():
            gate.set()


async def _until(predicate: object, what: str) -> None:
    for _ in range(1000):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _submit(kdf: KdfRunner, gates: Gates, name: str, client: str) -> asyncio.Task[str]:
    gates.job(name)
    return asyncio.ensure_future(kdf.run(lambda: gates.work(name), client=client))


async def test_flood_from_one_address_does_not_starve_another() -> None:
    """50 derivations queued from address A; one from B starts before A's third."""
    kdf = KdfRunner(2, max_waiting=64)
    gates = Gates()
    try:
        flood = [_submit(kdf, gates, f"A{i}", A) for i in range(50)]
        await _until(lambda: len(gates.started) == 2, "A0 and A1 to start")
        assert kdf.waiting(A) == 48
        good = _submit(kdf, gates, "B0", B)
        await asyncio.sleep(0)
        assert kdf.waiting(B) == 1
        gates.release("A0")
        await _until(lambda: len(gates.started) == 3, "the next start")
        assert gates.started == ["A0", "A1", "B0"]
        gates.release_all()
        assert await good == "B0"
        assert [await t for t in flood] == [f"A{i}" for i in range(50)]
    finally:
        gates.release_all()
        kdf.close()


async def test_waiting_clients_are_served_in_turn() -> None:
    """Three flooding addresses share the slots round-robin, whatever their queue."""
    kdf = KdfRunner(1, max_waiting=64)
    gates = Gates()
    try:
        tasks = [_submit(kdf, gates, "A0", A)]
        await _until(lambda: gates.started == ["A0"], "A0")
        tasks += [_submit(kdf, gates, f"A{i}", A) for i in range(1, 4)]
        tasks += [_submit(kdf, gates, f"B{i}", B) for i in range(3)]
        tasks += [_submit(kdf, gates, f"C{i}", C) for i in range(2)]
        await asyncio.sleep(0)
        for step in range(1, 9):
            gates.release(gates.started[-1])
            await _until(lambda step=step: len(gates.started) == step + 1, "the next start")
        assert gates.started == ["A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "A3"]
        gates.release_all()
        await asyncio.gather(*tasks)
    finally:
        gates.release_all()
        kdf.close()


async def test_one_address_may_queue_only_so_much() -> None:
    kdf = KdfRunner(1, max_waiting=3)
    gates = Gates()
    try:
        tasks = [_submit(kdf, gates, f"A{i}", A) for i in range(4)]
        await _until(lambda: gates.started == ["A0"], "A0")
        with pytest.raises(Busy):
            await kdf.run(lambda: "too many", client=A)
        other = _submit(kdf, gates, "B0", B)  # another address is not refused
        gates.release_all()
        await asyncio.gather(*tasks, other)
        assert kdf.waiting(A) == kdf.running(A) == 0
    finally:
        gates.release_all()
        kdf.close()


async def test_a_caller_that_goes_away_gives_its_place_back() -> None:
    kdf = KdfRunner(1, max_waiting=2)
    gates = Gates()
    try:
        first = _submit(kdf, gates, "A0", A)
        await _until(lambda: gates.started == ["A0"], "A0")
        gone = _submit(kdf, gates, "A1", A)
        await asyncio.sleep(0)
        gone.cancel()
        # The running derivation keeps its slot until its thread is done, even if its
        # caller stops waiting: its memory is in use until then.
        first.cancel()
        await asyncio.sleep(0.01)
        assert kdf.running(A) == 1 and kdf.waiting(A) == 0
        later = _submit(kdf, gates, "B0", B)
        gates.release("A0")
        gates.release("B0")
        assert await later == "B0"
        assert gates.started == ["A0", "B0"]
        assert kdf.running(A) == kdf.running(B) == 0
    finally:
        gates.release_all()
        kdf.close()


def test_client_keys() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    # One host usually owns a whole /64: it gets one share, not one per address.
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("") == "local"


async def test_bad_password_flood_does_not_delay_a_good_login_from_elsewhere(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real AccountService: a full queue of guesses from A (at addresses
    that do not exist: each costs a derivation all the same) is waiting before a good
    login from B, whose derivation still starts as soon as one slot frees."""
    await app.accounts.create("bob@example.test", "us-east", PASSWORD)
    order: list[str] = []
    lock = threading.Lock()
    gate = threading.Event()
    real_wrap, real_unwrap = keys.wrap_with_password, keys.unwrap_with_password

    def gated(password: str) -> None:
        with lock:
            order.append(password)
        gate.wait(10)

    def wrap(kp: keys.KeyPair, password: str, params: keys.KdfParams) -> bytes:
        gated(password)
        return real_wrap(kp, password, params)

    def unwrap(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        gated(password)
        return real_unwrap(blob, password, key_id)

    monkeypatch.setattr(keys, "wrap_with_password", wrap)
    monkeypatch.setattr(keys, "unwrap_with_password", unwrap)
    flood = app.kdf.slots + app.kdf.max_waiting
    guesses = [asyncio.ensure_future(app.accounts.authenticate(
        f"nobody{i}@example.test", f"guess number {i}", client=A)) for i in range(flood)]
    await _until(lambda: app.kdf.waiting(A) == app.kdf.max_waiting, "the guesses to queue")
    with pytest.raises(Busy):
        await app.accounts.authenticate("nobody@example.test", "one guess too many", client=A)
    good = asyncio.ensure_future(app.accounts.authenticate("bob@example.test", PASSWORD,
                                                           client=B))
    await _until(lambda: app.kdf.waiting(B) == 1, "the good login to queue")
    gate.set()
    session = await good
    assert session.address == "bob@example.test"
    assert order.index(PASSWORD) == app.kdf.slots  # right after the first to finish
    results = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results)
