"""Back-off for password guessing (issue 13 point 5): per client and account, per
account, per client with a low cap; a login the key cache serves never waits."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from letterlock.app import App
from letterlock.errors import AuthenticationFailed
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.accounts.login_backoff import (
    ACCOUNT_FREE,
    CLIENT_CAP_S,
    CLIENT_FREE,
    PAIR_FREE,
    LoginBackoff,
)
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from support.env import PASSWORD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def backoff(clock: Clock, max_delay_s: float = 15.0) -> LoginBackoff:
    return LoginBackoff(max_delay_s, clock=clock, sleep=clock.sleep, window_s=900.0,
                        max_entries=1000)


def test_one_client_at_one_account_waits_longer_and_longer_up_to_the_cap() -> None:
    clock = Clock()
    b = backoff(clock)
    waits = []
    for _ in range(12):
        waits.append(b.delay_for("198.51.100.7", "alice@example.test"))
        b.failed("198.51.100.7", "alice@example.test")
    assert waits[: PAIR_FREE + 1] == [0.0] * (PAIR_FREE + 1)
    assert waits[PAIR_FREE + 1 : PAIR_FREE + 6] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert max(waits) == 15.0 and waits[-1] == 15.0
    # The same client at another account is not held by this pair; another client at
    # this account only by the account's count (12 failures, 2 past ACCOUNT_FREE).
    assert b.delay_for("198.51.100.7", "bob@example.test") == 0.0
    assert 12 - ACCOUNT_FREE == 2
    assert b.delay_for("203.0.113.9", "alice@example.test") == 1.0
    # The window forgets.
    clock.now += 901
    assert b.delay_for("198.51.100.7", "alice@example.test") == 0.0


def test_ipv6_clients_are_counted_by_their_64() -> None:
    clock = Clock()
    b = backoff(clock)
    for i in range(PAIR_FREE + 1):
        b.failed(f"2001:db8:1:2::{i + 1}", "alice@example.test")
    assert b.delay_for("2001:db8:1:2::ffff", "alice@example.test") == 0.5
    assert b.delay_for("2001:db8:1:3::1", "alice@example.test") == 0.0


def test_many_clients_at_one_account_slow_strangers_but_not_its_owner() -> None:
    clock = Clock()
    b = backoff(clock)
    b.succeeded("192.0.2.10", "alice@example.test")  # the owner's phone
    for i in range(ACCOUNT_FREE + 3):
        b.failed(f"198.51.100.{i + 1}", "alice@example.test")  # one guess each
    assert b.delay_for("203.0.113.50", "alice@example.test") == 2.0
    assert b.delay_for("192.0.2.10", "alice@example.test") == 0.0


def test_a_busy_shared_address_is_slowed_but_never_locked_out() -> None:
    clock = Clock()
    b = backoff(clock)
    for i in range(100):  # 100 errors in well under 60 s, at many accounts
        b.failed("192.0.2.99", f"user{i}@example.test")
    assert b.delay_for("192.0.2.99", "carol@example.test") == CLIENT_CAP_S
    assert CLIENT_FREE < 100


def test_success_forgets_that_pair_only() -> None:
    clock = Clock()
    b = backoff(clock)
    for _ in range(PAIR_FREE + 2):
        b.failed("198.51.100.7", "alice@example.test")
        b.failed("198.51.100.7", "mallory@example.test")
    b.succeeded("198.51.100.7", "mallory@example.test")
    assert b.delay_for("198.51.100.7", "mallory@example.test") == 0.0
    assert b.delay_for("198.51.100.7", "alice@example.test") == 1.0


def test_zero_switches_it_off_and_memory_is_bounded() -> None:
    clock = Clock()
    off = backoff(clock, max_delay_s=0)
    for _ in range(50):
        off.failed("198.51.100.7", "alice@example.test")
    assert off.delay_for("198.51.100.7", "alice@example.test") == 0.0
    small = LoginBackoff(15.0, clock=clock, sleep=clock.sleep, max_entries=10)
    for i in range(100):
        small.failed(f"198.51.100.{i}", f"u{i}@example.test")
    assert len(small._pairs._times) == 10 and len(small._clients._times) == 10


@pytest.fixture
def paced(app: App) -> tuple[App, Clock]:
    clock = Clock()
    app.accounts._backoff = backoff(clock)
    return app, clock


async def test_service_waits_before_the_full_check_and_logs_it(
        paced: tuple[App, Clock], caplog: pytest.LogCaptureFixture) -> None:
    app, clock = paced
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    await app.accounts.create("alice@example.test", "us-east", PASSWORD)
    accounts: AccountService = app.accounts
    for _ in range(PAIR_FREE + 3):
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("alice@example.test", "wrong password!",
                                        client="198.51.100.7")
    assert clock.slept == [0.5, 1.0]
    # An unknown account is held back the same way (no telling which exist).
    for _ in range(PAIR_FREE + 2):
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("nobody@example.test", "wrong password!",
                                        client="198.51.100.7")
    assert clock.slept == [0.5, 1.0, 0.5]
    delayed = [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
               if getattr(r, "ll_event", None) is LogEvent.LOGIN_DELAYED]
    assert [(d["ip"], d["user"], d["delay_ms"]) for d in delayed] == [
        ("198.51.100.7", "alice@example.test", 500),
        ("198.51.100.7", "alice@example.test", 1000),
        ("198.51.100.7", "nobody@example.test", 500)]
    # The right password from there still works after the wait, and clears the pair.
    session = await accounts.authenticate("alice@example.test", PASSWORD,
                                          client="198.51.100.7")
    assert session.ref.address == "alice@example.test"
    assert clock.slept[-1] == 2.0
    assert accounts._backoff.delay_for("198.51.100.7", "alice@example.test") == 0.0


async def test_a_login_the_key_cache_serves_never_waits(paced: tuple[App, Clock]) -> None:
    app, clock = paced
    await app.accounts.create("alice@example.test", "us-east", PASSWORD)
    await app.accounts.authenticate("alice@example.test", PASSWORD, client="192.0.2.10")
    if not app.accounts._keys.enabled:
        pytest.skip("the key cache is off in this configuration")
    for _ in range(PAIR_FREE + 4):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.authenticate("alice@example.test", "wrong password!",
                                            client="192.0.2.10")
    waited = len(clock.slept)
    assert waited > 0
    await app.accounts.authenticate("alice@example.test", PASSWORD, client="192.0.2.10")
    assert len(clock.slept) == waited  # served from the cache: no wait


def test_the_option_reaches_the_service(app: App) -> None:
    assert app.config.crypto.login_delay_max_ms == 15_000
    assert app.accounts._backoff.max_delay_s == 15.0
    assert replace(app.config.crypto, login_delay_max_ms=0).login_delay_max_ms == 0
