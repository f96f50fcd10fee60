"""Sealing helper processes: what they seal opens with the account key and matches
what the server process would seal; a helper that dies loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from letterlock.app import initialise, open_app
from letterlock.crypto import seal
from letterlock.errors import CryptoError
from letterlock.imap import search_text, views
from letterlock.mime import summary as summaries
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.mail import sealing, text_index, text_postings
from letterlock.services.mail.sealing import SealPool
from support.env import PASSWORD, make_config

KEY = X25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
KEY_ID = os.urandom(16)
OPENER = seal.Opener(KEY, KEY_ID)
ACCOUNT = "0123456789abcdef0123456789abcdef"


def message(n: int, size: int = 600) -> bytes:
    head = (f"From: sender{n}@example.org\r\nTo: bob@example.test\r\n"
            f"Subject: number {n}\r\n\r\n").encode()
    return head + (f"body of {n} ".encode() * size)[: max(0, size - len(head))]


def assert_sealed(raw: bytes, blob: bytes, sealed_summary: bytes, _posting: bytes = b"") -> None:
    assert OPENER.open(blob, seal.Expect(ACCOUNT, "body")) == raw
    opened = summaries.decode(OPENER.open(sealed_summary, seal.Expect(ACCOUNT, "summary")))
    assert opened == summaries.summarize(raw)
    assert opened.extra == summaries.summarize(raw).extra


@pytest.fixture
async def pool() -> AsyncIterator[SealPool]:
    p = SealPool(1, 4096)
    await p.start()
    yield p
    await p.close()


async def test_helper_seals_what_opens_with_the_account_key(pool: SealPool) -> None:
    assert len(pool.helper_pids) == 1
    raws = [message(n, size) for n, size in enumerate((0, 10, 700, 4096, 4097, 70_000))]
    futures = [pool.seal(r, PUBLIC, KEY_ID, ACCOUNT) for r in raws]
    assert all(f is not None for f in futures)
    results = await asyncio.gather(*[f for f in futures if f is not None])
    for raw, (blob, sealed_summary, posting) in zip(raws, results, strict=True):
        assert_sealed(raw, blob, sealed_summary)
        # Chunked with the pool's chunk size: a 70,000-byte message has 18 chunks.
        assert len(blob) == seal.sealed_size(len(raw), 4096)
        # The text posting's plaintext: what SEARCH BODY compares, and the header.
        text = text_index.body_text(raw)
        if len(text) > text_postings.MAX_TEXT:
            assert posting == b""  # too much text: its body is opened by a search
            continue
        posted = text_postings.decode(posting)
        assert posted.text == text and raw.startswith(posted.header)
        assert posted.version == posted.view == b""  # no header view given


async def test_helper_postings_carry_the_header_view_it_is_given() -> None:
    """The composition root names the front-end's header view; the helper imports
    it by name and each posting carries the view (a reader need not make it)."""
    p = SealPool(1, 4096)
    p.header_view = (views.VERSION, search_text.encode)
    try:
        await p.start()
        raw = message(3, 700)
        future = p.seal(raw, PUBLIC, KEY_ID, ACCOUNT)
        assert future is not None
        _blob, _summary, posting = await future
    finally:
        await p.close()
    posted = text_postings.decode(posting)
    assert posted.version == views.VERSION
    assert posted.view == search_text.encode(posted.header) and posted.view


async def test_many_requests_each_get_their_own_answer(pool: SealPool) -> None:
    raws = [message(n, 200 + 37 * n) for n in range(300)]
    futures = [pool.seal(r, PUBLIC, KEY_ID, ACCOUNT) for r in raws]
    results = await asyncio.gather(*[f for f in futures if f is not None])
    assert len(results) == len(raws)
    for raw, (blob, sealed_summary, _posting) in zip(raws, results, strict=True):
        assert_sealed(raw, blob, sealed_summary)


async def test_a_bad_public_key_is_an_error_for_that_message_only(pool: SealPool) -> None:
    good = pool.seal(message(1), PUBLIC, KEY_ID, ACCOUNT)
    bad = pool.seal(message(2), b"\x00" * 32, KEY_ID, ACCOUNT)  # a low-order point
    assert good is not None and bad is not None
    with pytest.raises(CryptoError, match="sealing failed"):
        await bad
    assert_sealed(message(1), *(await good))


async def test_too_large_or_no_helpers_means_seal_it_yourself() -> None:
    small = SealPool(1, 4096, max_bytes=1000)
    try:
        await small.start()
        assert small.seal(b"x" * 1001, PUBLIC, KEY_ID, ACCOUNT) is None
    finally:
        await small.close()
    none = SealPool(0, 4096)
    assert none.seal(b"x", PUBLIC, KEY_ID, ACCOUNT) is None
    await none.close()


async def test_first_requests_are_answered_while_the_helper_starts() -> None:
    p = SealPool(1, 4096)
    try:
        # Nothing started yet: the caller seals, and a helper starts in the background.
        assert p.seal(message(1), PUBLIC, KEY_ID, ACCOUNT) is None
        for _ in range(200):
            if p.helper_pids:
                break
            await asyncio.sleep(0.05)
        assert p.helper_pids
        future = p.seal(message(2), PUBLIC, KEY_ID, ACCOUNT)
        assert future is not None
        assert_sealed(message(2), *(await future))
    finally:
        await p.close()


async def test_a_killed_helper_loses_nothing_and_is_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "RESTART_DELAY_S", 0.0)
    p = SealPool(1, 4096)
    await p.start()
    try:
        [pid] = p.helper_pids
        raws = [message(n, 20_000) for n in range(400)]
        futures = [p.seal(r, PUBLIC, KEY_ID, ACCOUNT) for r in raws]
        await asyncio.sleep(0.01)  # some answered, most still in the helper's hands
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.gather(*[f for f in futures if f is not None])
        assert len(results) == len(raws)
        for raw, (blob, sealed_summary, _posting) in zip(raws, results, strict=True):
            assert_sealed(raw, blob, sealed_summary)
        # The next request (sealed here meanwhile) brings a new helper up.
        assert p.seal(message(1), PUBLIC, KEY_ID, ACCOUNT) is None
        await p.start()
        assert p.helper_pids and p.helper_pids != [pid]
    finally:
        await p.close()


async def test_close_stops_the_helpers() -> None:
    p = SealPool(2, 4096)
    await p.start()
    pids = p.helper_pids
    assert len(pids) == 2
    await p.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert p.seal(message(1), PUBLIC, KEY_ID, ACCOUNT) is None


async def test_mail_appended_through_the_app_is_sealed_by_a_helper(home: Path) -> None:
    # One helper asked for: by default there is none where the event loops (main
    # process, IMAP workers) take every CPU.
    config = make_config(home, LETTERLOCK_CRYPTO_SEAL_PROCESSES="1")
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        sealer = app.mailboxes.sealer
        assert sealer is not None and sealer.processes >= 1
        await sealer.start()
        assert sealer.helper_pids
        ref, _ = await app.accounts.create("carol@example.test", "us-east", PASSWORD)
        raws = [message(n) for n in range(20)]
        await asyncio.gather(*(app.mailboxes.append(ref, "INBOX", r) for r in raws))
        session = await app.accounts.authenticate("carol@example.test", PASSWORD)
        inbox = await app.mailboxes.get_mailbox(session, "INBOX")
        msgs = await app.mailboxes.messages(session, inbox.id)
        assert sorted((await app.mailboxes.bodies(session, msgs)).values()) == sorted(raws)


def test_helper_count_leaves_each_event_loop_its_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert sealing.default_processes(-1) == 4  # 7 free CPUs, at most 4 helpers
    assert sealing.default_processes(-1, event_loops=6) == 2
    assert sealing.default_processes(-1, event_loops=8) == 0
    assert sealing.default_processes(3, event_loops=8) == 3  # as configured
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert sealing.default_processes(-1) == 0


async def test_a_stuck_helper_is_stopped_and_its_work_done_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "STALL_S", 0.4)
    monkeypatch.setattr(sealing, "RESTART_DELAY_S", 60.0)
    p = SealPool(1, 4096)
    await p.start()
    try:
        [pid] = p.helper_pids
        os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing
        raws = [message(n) for n in range(10)]
        futures = [p.seal(r, PUBLIC, KEY_ID, ACCOUNT) for r in raws]
        results = await asyncio.wait_for(
            asyncio.gather(*[f for f in futures if f is not None]), 10)
        for raw, (blob, sealed_summary, _posting) in zip(raws, results, strict=True):
            assert_sealed(raw, blob, sealed_summary)
        assert not p.helper_pids
        # The work is handed back before the killed helper is reaped: wait for that.
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await p.close()


async def test_requests_cut_into_frames_keep_their_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "FRAME_BYTES", 10_000)
    p = SealPool(2, 4096)
    await p.start()
    try:
        raws = [message(n, 3000 + n) for n in range(60)] + [message(99, 25_000)]
        futures = [p.seal(r, PUBLIC, KEY_ID, ACCOUNT) for r in raws]
        results = await asyncio.gather(*[f for f in futures if f is not None])
        assert len(results) == len(raws)
        for raw, (blob, sealed_summary, _posting) in zip(raws, results, strict=True):
            assert_sealed(raw, blob, sealed_summary)
    finally:
        await p.close()
