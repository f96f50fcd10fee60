"""The outbound queue key is kept wrapped under the server key (issue 13 point 4): no
file under HOME holds it in the clear, a clear key of an older version is wrapped on
first start and its file removed, and queued mail sealed to it still opens."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from letterlock.crypto import keys
from letterlock.errors import CryptoError
from letterlock.services.mail.outbound import Spool
from letterlock.services.mail.queue_entry import QueueEntry, RecipientState
from letterlock.services.mail.queue_key import (
    PLAIN_FILE,
    SERVER_KEY_FILE,
    WRAPPED_FILE,
    load_queue_key,
)

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def files_holding(home: Path, secret: bytes) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and secret in p.read_bytes()]


def entry() -> QueueEntry:
    return QueueEntry("0123456789abcdef01234567", "us-east", "alice@example.test",
                      "alice@example.test", NOW, 0, NOW,
                      (RecipientState("carol@other.test"),))


def test_a_new_queue_key_is_only_stored_wrapped(tmp_path: Path) -> None:
    control = tmp_path / "control"
    pair = load_queue_key(control)
    assert not (control / "queue" / PLAIN_FILE).exists()
    assert (control / "queue" / WRAPPED_FILE).exists()
    assert files_holding(tmp_path, pair.private_bytes()) == []
    assert stat.S_IMODE((control / SERVER_KEY_FILE).stat().st_mode) == 0o600
    assert load_queue_key(control).private_bytes() == pair.private_bytes()  # a restart


def test_a_clear_queue_key_is_wrapped_and_removed_and_queued_mail_still_opens(
        tmp_path: Path) -> None:
    control = tmp_path / "control"
    (control / "queue").mkdir(parents=True)
    old = keys.KeyPair.generate()
    (control / "queue" / PLAIN_FILE).write_bytes(old.private_bytes())
    # mail queued by the older version, sealed to the clear key
    Spool(tmp_path, old).write_new(entry(), b"Subject: waiting\r\n\r\nbody\r\n")
    pair = load_queue_key(control)
    assert pair.private_bytes() == old.private_bytes()
    assert not (control / "queue" / PLAIN_FILE).exists()
    assert files_holding(tmp_path, old.private_bytes()) == []
    # after a restart the queue opens what was waiting
    spool = Spool(tmp_path, load_queue_key(control))
    [waiting] = spool.load_all()
    assert waiting.id == entry().id
    assert spool.read_message(waiting).startswith(b"Subject: waiting")


def test_another_server_key_is_a_clear_error(tmp_path: Path) -> None:
    control = tmp_path / "control"
    load_queue_key(control)
    (control / SERVER_KEY_FILE).write_bytes(b"\x01" * 32)
    wrapped = (control / "queue" / WRAPPED_FILE).read_bytes()
    with pytest.raises(CryptoError, match="does not open with the server key"):
        load_queue_key(control)
    assert (control / "queue" / WRAPPED_FILE).read_bytes() == wrapped  # nothing replaced


def test_a_damaged_server_key_file_is_named(tmp_path: Path) -> None:
    control = tmp_path / "control"
    load_queue_key(control)
    (control / SERVER_KEY_FILE).write_bytes(b"short")
    with pytest.raises(CryptoError, match="is not a server key"):
        load_queue_key(control)


def test_two_different_queue_keys_are_not_guessed_between(tmp_path: Path) -> None:
    control = tmp_path / "control"
    load_queue_key(control)
    other = keys.KeyPair.generate().private_bytes()
    (control / "queue" / PLAIN_FILE).write_bytes(other)
    with pytest.raises(CryptoError, match="different queue keys"):
        load_queue_key(control)
    assert (control / "queue" / PLAIN_FILE).read_bytes() == other
