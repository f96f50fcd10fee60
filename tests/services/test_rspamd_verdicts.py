"""rspamd's JSON verdicts as letterlock reads them, and the X-Spam-Status field it
writes from them (services/mail/rspamd.py)."""

from __future__ import annotations

import json

import pytest

from letterlock.errors import ConfigError
from letterlock.services.mail.rspamd import (
    Endpoint,
    RspamdUnavailable,
    SpamVerdict,
    parse_verdict,
)


def test_a_verdict_and_its_header() -> None:
    reply = {"action": "add header", "score": 8.3, "required_score": 15,
             "symbols": {f"SYM_{i:02d}": {"score": i / 10} for i in range(60)}}
    verdict = parse_verdict(json.dumps(reply).encode())
    assert verdict.action == "add header" and verdict.is_spam
    assert verdict.symbols[0] == "SYM_59"  # highest score first
    header = verdict.header()
    lines = header.split(b"\r\n")
    assert lines[0] == b"X-Spam-Status: Yes, score=8.30 required=15.00"
    assert lines[1] == b"\taction=add_header"
    assert all(len(line) <= 78 for line in lines)
    assert header.endswith(b"\r\n") and header.count(b"SYM_") == 40
    assert b"\r\n\r\n" not in header


def test_hostile_symbol_names_cannot_break_the_header() -> None:
    reply = {"action": "no action\r\nBcc: x@y", "score": 0, "required_score": 15,
             "symbols": {"A\r\nX-Evil: 1": {"score": 1}, "B": "not a dict"}}
    header = parse_verdict(json.dumps(reply).encode()).header()
    assert header.count(b"\r\n") == header.count(b"\r\n\t") + 1
    assert b"X-Evil:" not in header.replace(b"X-Spam-Status", b"")


@pytest.mark.parametrize("body", [b"", b"<html>", b"[]", b'{"score": 1}',
                                  b'{"action": "reject", "score": "many"}'])
def test_not_a_verdict(body: bytes) -> None:
    with pytest.raises(RspamdUnavailable):
        parse_verdict(body)


def test_ham_is_no() -> None:
    assert SpamVerdict("no action", -1.5, 15.0, ()).header() == (
        b"X-Spam-Status: No, score=-1.50 required=15.00\r\n\taction=no_action\r\n")


@pytest.mark.parametrize("url", ["https://127.0.0.1:11333", "127.0.0.1:11333", "http://",
                                 "http://host:port"])
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        Endpoint.parse(url, "spam.rspamd_url")
