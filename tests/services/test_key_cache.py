"""The login key cache: a repeat login skips Argon2id; a wrong password, a changed
account record (password change, recovery, end-to-end switch, delete, move), time
and use count all end that, in this process and in another one sharing the cells;
entries travel between processes encrypted, and a tampered one is refused.

Argon2id runs are counted at ``keys.unwrap_with_password``, never timed."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from pysequoia import Tsk

from letterlock.app import App, initialise, open_app
from letterlock.crypto import keys
from letterlock.errors import AuthenticationFailed
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.accounts.key_cache import (
    KIND_DROP,
    KIND_KEY,
    KeyCache,
    KeyCacheSettings,
    WireEntry,
    binding_of,
    decode_entry,
    encode_entry,
)
from letterlock.services.accounts.setup import InitOptions
from support.env import PASSWORD, make_config

BOB = "bob@example.test"
NEW = "a brand new passphrase"
RAW = b"From: a@example.test\r\nSubject: cached\r\n\r\nhello\r\n"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    PUBLIC = str(Tsk.generate("Bob <bob@example.test>").extract_certificate()).encode()


class Argon2Count:
    def __init__(self) -> None:
        self.runs = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            runs, self.runs = self.runs, 0
        return runs


@pytest.fixture
def argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Argon2Count]:
    count = Argon2Count()
    real = keys.unwrap_with_password

    def counting(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        with count._lock:
            count.runs += 1
        return real(blob, password, key_id)

    monkeypatch.setattr(keys, "unwrap_with_password", counting)
    yield count


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LoopBus:
    """Two or more processes' buses in one: a broadcast reaches every other member."""

    def __init__(self) -> None:
        self.members: list[dict[bytes, list[Callable[[bytes], None]]]] = []
        self.sent: list[tuple[bytes, bytes]] = []

    def member(self) -> Member:
        handlers: dict[bytes, list[Callable[[bytes], None]]] = {}
        self.members.append(handlers)
        return Member(self, handlers)


@dataclasses.dataclass
class Member:
    net: LoopBus
    handlers: dict[bytes, list[Callable[[bytes], None]]]

    def subscribe(self, kind: bytes, handler: Callable[[bytes], None]) -> None:
        self.handlers.setdefault(kind, []).append(handler)

    def broadcast(self, kind: bytes, payload: bytes) -> None:
        self.net.sent.append((kind, payload))
        for other in self.net.members:
            if other is not self.handlers:
                for handler in other.get(kind, ()):
                    handler(payload)

    def drain(self) -> None:
        pass  # delivered at once


def _settings(**changes: float) -> KeyCacheSettings:
    return dataclasses.replace(KeyCacheSettings(), **changes)


def _service(app: App, cache: KeyCache) -> AccountService:
    """Another server process: its own AccountService and cache over the same cells."""
    return AccountService(app.control, app.cells, app.kdf, keys.KdfParams(
        app.config.crypto.argon2_memory_kib, app.config.crypto.argon2_iterations,
        app.config.crypto.argon2_lanes), app.audit, key_cache=cache)


async def _reads_mail(app: App, service: AccountService, password: str) -> None:
    session = await service.authenticate(BOB, password)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    assert list((await app.mailboxes.bodies(session, msgs)).values()) == [RAW]


async def _bob(app: App) -> str:
    ref, code = await app.accounts.create(BOB, "us-east", PASSWORD)
    await app.mailboxes.append(ref, "INBOX", RAW)
    return code


async def test_repeat_login_is_served_from_the_cache(app: App, argon2: Argon2Count) -> None:
    await _bob(app)
    await _reads_mail(app, app.accounts, PASSWORD)
    assert argon2.take() == 1
    for _ in range(5):
        await _reads_mail(app, app.accounts, PASSWORD)
    assert argon2.take() == 0


async def test_wrong_password_against_a_cached_entry_still_runs_argon2(
        app: App, argon2: Argon2Count) -> None:
    await _bob(app)
    await app.accounts.authenticate(BOB, PASSWORD)
    argon2.take()
    for guess in ("wrong password", PASSWORD + " ", PASSWORD.upper()):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.authenticate(BOB, guess)
        assert argon2.take() == 1  # the full cost, as without a cache
    await app.accounts.authenticate(BOB, PASSWORD)  # the entry is still there
    assert argon2.take() == 0


async def test_logins_racing_from_one_client_share_one_argon2(
        app: App, argon2: Argon2Count, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mail program opening five connections at once pays Argon2id once; another
    client's login does not wait for it."""
    await _bob(app)
    sessions = await asyncio.gather(*(app.accounts.authenticate(BOB, PASSWORD,
                                                                client="192.0.2.1")
                                      for _ in range(5)))
    assert {s.address for s in sessions} == {BOB}
    assert argon2.take() == 1

    app.accounts._keys.clear()  # (start cold again)
    gate, calls = threading.Event(), []
    counting = keys.unwrap_with_password

    def first_one_stuck(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        calls.append(password)
        if len(calls) == 1:
            gate.wait(10)
        return counting(blob, password, key_id)

    monkeypatch.setattr(keys, "unwrap_with_password", first_one_stuck)
    stuck = asyncio.ensure_future(app.accounts.authenticate(BOB, PASSWORD, client="192.0.2.1"))
    while not calls:
        await asyncio.sleep(0.005)
    other = await asyncio.wait_for(app.accounts.authenticate(BOB, PASSWORD,
                                                             client="192.0.2.2"), 5)
    gate.set()
    assert (await stuck).address == other.address == BOB
    assert argon2.take() == 2

    # A wrong guess in flight does not make a good login from the same client fail.
    app.accounts._keys.clear()
    results = await asyncio.gather(
        app.accounts.authenticate(BOB, "wrong password", client="192.0.2.1"),
        app.accounts.authenticate(BOB, PASSWORD, client="192.0.2.1"),
        return_exceptions=True)
    assert isinstance(results[0], AuthenticationFailed)
    assert not isinstance(results[1], BaseException) and results[1].address == BOB


async def _change_password(app: App, code: str) -> None:
    await app.accounts.change_password(BOB, PASSWORD, NEW)


async def _recover(app: App, code: str) -> None:
    await app.accounts.recover(BOB, code, NEW)


async def _e2e(app: App, code: str) -> None:
    await app.accounts.set_end_to_end(BOB, PASSWORD, PUBLIC)


async def _delete(app: App, code: str) -> None:
    await app.accounts.delete(BOB)


async def _move(app: App, code: str) -> None:
    await app.accounts.move(BOB, "eu-dublin", settle_s=0)


CHANGES: dict[str, Callable[[App, str], Awaitable[None]]] = {
    "password change": _change_password, "recovery": _recover, "end-to-end": _e2e,
    "delete": _delete, "move": _move}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_changed_account_leaves_no_usable_entry_in_any_process(
        app: App, argon2: Argon2Count, change: str) -> None:
    code = await _bob(app)
    other = _service(app, KeyCache(_settings()))  # another process: no bus between them
    for service in (app.accounts, other):
        await service.authenticate(BOB, PASSWORD)
        await service.authenticate(BOB, PASSWORD)
    assert argon2.take() == 2
    await CHANGES[change](app, code)
    assert len(app.accounts._keys) == 0  # (dropped here at once)
    assert len(other._keys) == 1  # (there it lingers, unusable)
    argon2.take()
    for service in (app.accounts, other):
        if change in ("password change", "recovery"):
            with pytest.raises(AuthenticationFailed):
                await service.authenticate(BOB, PASSWORD)
            assert argon2.take() == 1
            await _reads_mail(app, service, NEW)
            assert argon2.take() == 1
        elif change == "delete":
            with pytest.raises(AuthenticationFailed):
                await service.authenticate(BOB, PASSWORD)
            assert argon2.take() == 0  # no record: the dummy derivation, not an unwrap
        else:  # the password did not change, but the record did: a full login
            session = await service.authenticate(BOB, PASSWORD)
            assert argon2.take() == 1
            assert session.ref.region == ("eu-dublin" if change == "move" else "us-east")
            assert session.ref.record.custody == ("e2e" if change == "end-to-end"
                                                  else "sealed")


async def test_entries_expire_by_time_and_by_use(app: App, argon2: Argon2Count) -> None:
    await _bob(app)
    clock = Clock()
    service = _service(app, KeyCache(_settings(ttl_s=60, max_uses=3), clock=clock))
    await service.authenticate(BOB, PASSWORD)
    clock.now += 59
    await service.authenticate(BOB, PASSWORD)
    assert argon2.take() == 1
    clock.now += 1  # the TTL counts from the full login; a hit does not extend it
    await service.authenticate(BOB, PASSWORD)
    assert argon2.take() == 1
    for _ in range(3):
        await service.authenticate(BOB, PASSWORD)
    assert argon2.take() == 0
    await service.authenticate(BOB, PASSWORD)  # three uses spent
    assert argon2.take() == 1


async def test_ttl_zero_turns_the_cache_off(home: Path, argon2: Argon2Count) -> None:
    config = make_config(home, LETTERLOCK_CRYPTO_KEY_CACHE_TTL_S="0")
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await _bob(app)
        for _ in range(3):
            await app.accounts.authenticate(BOB, PASSWORD)
        assert argon2.take() == 3
        assert len(app.accounts._keys) == 0


async def test_oldest_entries_are_evicted_and_shutdown_wipes_them(app: App) -> None:
    cache = KeyCache(_settings(max_entries=2))
    pair = keys.KeyPair.generate()
    for name in ("a", "b", "c"):
        await cache.store(f"{name}@example.test", bytes(32), PASSWORD, pair)
    assert len(cache) == 2
    assert await cache.unlock("a@example.test", bytes(32), PASSWORD, pair.key_id) is None
    got = await cache.unlock("c@example.test", bytes(32), PASSWORD, pair.key_id)
    assert got is not None and got.private_bytes() == pair.private_bytes()
    held = [e.sealed for e in cache._entries.values()]
    cache.close()
    assert len(cache) == 0
    assert all(not any(sealed) for sealed in held)  # overwritten, not just forgotten


async def test_entries_travel_between_processes_and_tampering_is_refused(
        app: App, argon2: Argon2Count) -> None:
    await _bob(app)
    net = LoopBus()
    here = _service(app, KeyCache(_settings(), bus=net.member()))
    there_cache = KeyCache(_settings(), bus=net.member())
    there = _service(app, there_cache)
    await here.authenticate(BOB, PASSWORD)
    assert argon2.take() == 1
    [(kind, payload)] = net.sent
    assert kind == KIND_KEY
    pair = (await here.authenticate(BOB, PASSWORD)).opener.private_key.private_bytes_raw()
    assert pair not in payload  # only the encrypted key travels
    await _reads_mail(app, there, PASSWORD)  # served from the received entry
    assert argon2.take() == 0
    with pytest.raises(AuthenticationFailed):
        await there.authenticate(BOB, "wrong password")
    assert argon2.take() == 1

    # A flipped bit anywhere in the sealed key, binding or salt: refused, and the
    # login takes the full path (and still works with the right password).
    entry = decode_entry(payload)
    for field in ("sealed", "binding", "salt", "nonce"):
        value = bytearray(getattr(entry, field))
        value[3] ^= 0x10
        there_cache.clear()
        there_cache.import_entry(dataclasses.replace(entry, **{field: bytes(value)}))
        assert len(there_cache) == 1
        await there.authenticate(BOB, PASSWORD)
        assert argon2.take() == 1, field

    # An entry forged by someone who can write to the bus and read the record: the
    # right binding and password, but not the account's key. It logs nobody in.
    ref = await app.accounts.resolve(BOB)
    forged_cache = KeyCache(_settings(), bus=(forger := LoopBus()).member())
    await forged_cache.store(BOB, binding_of(ref.region, ref.record), "forger's password",
                             keys.KeyPair.generate())
    there_cache.clear()
    there_cache.import_entry(decode_entry(forger.sent[0][1]))
    with pytest.raises(AuthenticationFailed):
        await there.authenticate(BOB, "forger's password")
    assert argon2.take() == 1
    assert len(there_cache) == 0  # and it is thrown away

    # Garbage and other versions are ignored.
    for junk in (b"", b"\x02" + payload[1:], payload[:40], payload[:-len(BOB)] + b"\xff"):
        for member in net.members:
            for handler in member.get(KIND_KEY, ()):
                handler(junk)

    # A drop in one process drops the entry in the others.
    there_cache.import_entry(entry)
    here._keys.drop(BOB)
    assert net.sent[-1][0] == KIND_DROP
    assert len(there_cache) == 0


def test_wire_encoding_round_trips_with_a_version_byte() -> None:
    entry = WireEntry("ann@example.test", bytes(range(32)), bytes(16), bytes(12),
                      bytes(48), 3_600_000, 10_000)
    raw = encode_entry(entry)
    assert raw[0] == 1 and raw.endswith(b"ann@example.test")
    assert decode_entry(raw) == entry


async def test_received_entries_are_capped_by_local_settings(app: App,
                                                              argon2: Argon2Count) -> None:
    await _bob(app)
    clock = Clock()
    net = LoopBus()
    here = _service(app, KeyCache(_settings(ttl_s=86_400, max_uses=1_000_000),
                                  bus=net.member()))
    there_cache = KeyCache(_settings(ttl_s=10, max_uses=2), bus=net.member(), clock=clock)
    there = _service(app, there_cache)
    await here.authenticate(BOB, PASSWORD)
    argon2.take()
    for _ in range(2):
        await there.authenticate(BOB, PASSWORD)
    assert argon2.take() == 0
    await there.authenticate(BOB, PASSWORD)
    assert argon2.take() == 1
    clock.now += 11
    await there.authenticate(BOB, PASSWORD)
    assert argon2.take() == 1


async def test_fifty_connections_of_one_client_log_in_at_once(app: App) -> None:
    """A client opening 50 connections at once (imaptest, a busy mail program) gets
    50 sessions: one derivation runs and the others wait for it, none is refused."""
    await app.accounts.create("many@example.test", "us-east", PASSWORD)
    sessions = await asyncio.gather(*(
        app.accounts.authenticate("many@example.test", PASSWORD, client="192.0.2.7")
        for _ in range(50)))
    assert len(sessions) == 50
