"""Delayed-delivery notices (RFC 3464, Action: delayed) and the bounce at expiry, end to
end: submission over real SMTP, the sealed queue, a receiving server on loopback
(aiosmtpd) that answers 451, and the notices read back from the sender's mailbox.
Time is moved by the queue's clock hook, never waited for."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from letterlock.app import App
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.operations.log_events import LogEvent
from smtp.conftest import ALICE, World
from smtp.test_smtp_outbound import MESSAGE, free_port, submit, submitting_through

HOUR = 3600.0


class Greylisting:
    """A receiving MX that defers every recipient, as a greylisting one does."""

    def __init__(self) -> None:
        self.attempts = 0

    async def handle_RCPT(self, server: object, session: object, envelope: Any,
                          address: str, options: list[str]) -> str:
        self.attempts += 1
        return "451 4.7.1 Greylisted, please try again later"


def make_queue(app: App, port: int, now: list[datetime], *, delay_notice_s: float = 4 * HOUR,
               max_age_s: float = 5 * 24 * HOUR) -> OutboundQueue:
    settings = OutboundSettings(hostname="mx.example.test", smarthost=f"127.0.0.1:{port}",
                                retry_base_s=0.2, retry_max_s=0.5, timeout_s=5,
                                max_age_s=max_age_s, delay_notice_s=delay_notice_s)
    return OutboundQueue(app.config.home, app.delivery, app.accounts,
                         DkimKeys(app.config.control_dir), settings, clock=lambda: now[0])


async def retried(queue: OutboundQueue, now: list[datetime], times: int = 1) -> None:
    """Move the clock to the entry's next attempt and wait for it, ``times`` times."""
    for _ in range(times):
        [entry] = queue.entries()
        now[0] = max(now[0], entry.next_attempt)
        queue.poke()  # the runner sleeps by the real clock
        await queue.wait_until(
            lambda es, n=entry.attempts: bool(es) and es[0].attempts > n)  # type: ignore[misc]


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def recipient_fields(report: email.message.Message) -> tuple[email.message.Message,
                                                             list[email.message.Message]]:
    """The message/delivery-status part's per-message and per-recipient fields, after
    checking the multipart/report shape (RFC 3462/3464)."""
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = report.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    groups = parts[1].get_payload()
    assert isinstance(groups, list) and len(groups) >= 2
    return groups[0], groups[1:]


@pytest.fixture
def greylisting() -> Any:
    handler = Greylisting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_delay_notice_reaches_the_sender_once_then_the_bounce_at_expiry(
        accounts: App, tmp_path: Path, greylisting: tuple[Greylisting, int],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    receiver, port = greylisting
    now = [datetime.now(UTC)]
    queue = make_queue(accounts, port, now)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        await retried(queue, now)
        assert await world.inbox(ALICE) == []  # retried, but not long enough yet
        [entry] = queue.entries()
        assert entry.recipients[0].status == "4.7.1" and not entry.delay_notified

        now[0] += timedelta(hours=4, seconds=1)
        await queue.wait_until(lambda es: bool(es) and es[0].delay_notified)
        attempts = queue.entries()[0].attempts
        [raw] = await world.inbox(ALICE)
        notice = parse(raw)
        assert notice["To"] == f"<{ALICE}>"
        assert notice["Auto-Submitted"] == "auto-replied"
        per_message, [rcpt] = recipient_fields(notice)
        assert per_message["Reporting-MTA"] == "dns; mx.example.test"
        assert rcpt["Final-Recipient"] == "rfc822; carol@other.test"
        assert rcpt["Action"] == "delayed"
        assert rcpt["Status"] == "4.7.1"
        assert rcpt["Diagnostic-Code"] == "smtp; 451 4.7.1 Greylisted, please try again later"
        assert rcpt["Remote-MTA"] == "dns; 127.0.0.1"
        assert rcpt["Will-Retry-Until"]  # the expiry, 5 days after arrival
        headers = notice.get_payload()[2].get_payload()  # type: ignore[index]
        assert "Subject: out" in headers and "Hello Carol" not in headers

        # Still deferred, retried again and again: no second notice.
        await retried(queue, now, 3)
        assert len(await world.inbox(ALICE)) == 1

        now[0] += timedelta(days=5)
        await queue.wait_until(lambda es: not es)
        notice_again, bounce_raw = await world.inbox(ALICE)
        assert notice_again == raw
        _, [failed] = recipient_fields(parse(bounce_raw))
        assert failed["Action"] == "failed" and failed["Status"] == "4.4.7"
        assert "451 4.7.1 Greylisted" in failed["Diagnostic-Code"]
    assert receiver.attempts >= attempts + 3
    lines = [r for r in caplog.records if getattr(r, "ll_event", None)
             == LogEvent.OUTBOUND_DELAY_NOTICE]
    assert len(lines) == 1
    fields = lines[0].ll_fields  # type: ignore[attr-defined]
    assert fields["sender"] == ALICE and fields["rcpts"] == 1
    assert fields["waited"] >= 4 * HOUR
    assert dict(lines[0].ll_context)["outbound"] == entry.id  # type: ignore[attr-defined]
    assert "Greylisted" not in caplog.text and "Hello Carol" not in caplog.text


async def _submitted_and_waited(app: App, queue: OutboundQueue, world: World,
                                now: list[datetime], mail_from: str, message: bytes) -> None:
    sender = await app.accounts.resolve(ALICE)
    await queue.submit(sender, mail_from, ["carol@other.test"], message)
    await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
    now[0] += timedelta(hours=5)
    await queue.wait_until(lambda es: bool(es) and es[0].delay_notified)
    await retried(queue, now, 2)


async def test_no_delay_notice_for_a_null_sender(
        accounts: App, tmp_path: Path, greylisting: tuple[Greylisting, int],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    now = [datetime.now(UTC)]
    queue = make_queue(accounts, greylisting[1], now)
    async with submitting_through(accounts, tmp_path, queue) as world:
        await _submitted_and_waited(accounts, queue, world, now, "", MESSAGE)
        assert await world.inbox(ALICE) == []
    skipped = [r.ll_fields for r in caplog.records  # type: ignore[attr-defined]
               if getattr(r, "ll_event", None) == LogEvent.OUTBOUND_NOTICE_SKIPPED]
    assert skipped == [{"notice": "delay-notice", "reason": "null-sender"}]


async def test_no_delay_notice_about_a_bounce(
        accounts: App, tmp_path: Path, greylisting: tuple[Greylisting, int]) -> None:
    # A delivery report someone forwards with their own address as sender: telling
    # them about its delay would be a report about a report.
    report = (b"From: alice@example.test\r\nTo: carol@other.test\r\nSubject: returned\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: multipart/report;\r\n"
              b" report-type=delivery-status; boundary=b\r\n\r\n--b\r\n"
              b"Content-Type: text/plain\r\n\r\nx\r\n--b--\r\n")
    now = [datetime.now(UTC)]
    queue = make_queue(accounts, greylisting[1], now)
    async with submitting_through(accounts, tmp_path, queue) as world:
        await _submitted_and_waited(accounts, queue, world, now, ALICE, report)
        assert await world.inbox(ALICE) == []


async def test_delay_notice_off_with_zero(
        accounts: App, tmp_path: Path, greylisting: tuple[Greylisting, int]) -> None:
    now = [datetime.now(UTC)]
    queue = make_queue(accounts, greylisting[1], now, delay_notice_s=0)
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        now[0] += timedelta(days=1)
        await retried(queue, now, 2)
        assert await world.inbox(ALICE) == []
        assert not queue.entries()[0].delay_notified


async def test_delay_notice_goes_when_due_not_at_the_next_backoff(
        accounts: App, tmp_path: Path, greylisting: tuple[Greylisting, int]) -> None:
    # Attempts at 0, 1 h and 3 h; the backoff's next would be at 6 h, but the queue
    # makes one at the 4 h mark, so the notice goes on time with a fresh answer.
    now = [datetime.now(UTC)]
    settings = OutboundSettings(hostname="mx.example.test",
                                smarthost=f"127.0.0.1:{greylisting[1]}", timeout_s=5,
                                retry_base_s=HOUR, retry_max_s=3 * HOUR)
    queue = OutboundQueue(accounts.config.home, accounts.delivery, accounts.accounts,
                          DkimKeys(accounts.config.control_dir), settings,
                          clock=lambda: now[0])
    async with submitting_through(accounts, tmp_path, queue) as world:
        assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
        await queue.wait_until(lambda es: bool(es) and es[0].attempts >= 1)
        [entry] = queue.entries()
        for _ in range(6):  # attempts at the backoff's times, up to just before 4 h
            if entry.next_attempt >= entry.created + timedelta(hours=4):
                break
            await retried(queue, now)
            [entry] = queue.entries()
        assert entry.attempts == 3
        assert entry.next_attempt == entry.created + timedelta(hours=4)
        assert not entry.delay_notified
        now[0] = entry.next_attempt
        queue.poke()
        await queue.wait_until(lambda es: bool(es) and es[0].delay_notified)
        assert len(await world.inbox(ALICE)) == 1
