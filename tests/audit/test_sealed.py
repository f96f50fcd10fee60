"""Events under a non-disclosure order: a salted commitment with nothing readable,
revealed later and checked against the commitment at its original position."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from letterlock.audit.check import Problem, verify_log
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.layout import EVENTS_FILE, SEALED_DIR
from letterlock.audit.records import decode, event_to_json
from letterlock.audit.store import MerkleLog, init_log
from letterlock.audit.verify import VerificationError, canonical_json, check_inclusion_bundle
from letterlock.errors import NotFound

from .conftest import T0, StepClock, numbered_event


def gagged(until_days: int | None) -> AuditEvent:
    details: tuple[tuple[str, str], ...] = (("instrument", "us-warrant"),)
    if until_days is None:
        details += (("indefinite", "true"),)
    return AuditEvent(
        EventType.LEGAL_PRODUCTION_EXECUTED,
        actor="legal-team",
        at=T0,
        account="bob@example.test",
        matter="M-2025-0007",
        details=details,
        sealed_until=T0 + timedelta(days=until_days) if until_days is not None else None,
    )


@pytest.fixture
def log(logdir: Path) -> MerkleLog:
    clock = StepClock()
    init_log(logdir, clock=clock)
    return MerkleLog(logdir, clock=clock)


def test_commitment_has_no_readable_content(log: MerkleLog, logdir: Path) -> None:
    log.append([numbered_event(0)])
    [index] = log.append([gagged(30)])
    leaf = log.leaf(index)
    record = decode(leaf)
    assert record.kind == "commitment"
    assert record.event is None
    for secret in (b"bob", b"M-2025", b"warrant", b"legal", b"production"):
        assert secret not in leaf
    assert set(json.loads(leaf)) == {"v", "i", "kind", "logged_at", "commitment"}
    # the salt lives only in the operator's private sidecar, mode 0600
    sidecar = logdir / SEALED_DIR / f"{index}.json"
    assert sidecar.stat().st_mode & 0o077 == 0
    assert verify_log(logdir).intact


def test_reveal_matches_commitment_at_original_position_and_time(
    log: MerkleLog, logdir: Path
) -> None:
    [index] = log.append([gagged(30)])
    committed_at = log.record(index).logged_at
    log.append([numbered_event(i) for i in range(1, 6)])
    revealed = log.reveal(index, actor="legal-team")
    record = log.record(revealed)
    assert record.kind == "reveal"
    assert record.reveals == index
    assert record.revealed_event is not None
    assert record.revealed_event.account == "bob@example.test"
    assert record.revealed_event.matter == "M-2025-0007"
    assert record.event is not None and record.event.type is EventType.LOG_COMMITMENT_REVEALED
    bundle = log.inclusion_bundle(revealed)
    result = check_inclusion_bundle(json.loads(json.dumps(bundle)), log.public_key)
    assert result.revealed_commitment == index
    assert result.committed_at is not None
    assert result.committed_at.startswith(committed_at.strftime("%Y-%m-%dT%H:%M:%S"))
    report = verify_log(logdir)
    assert report.intact and report.reveals_checked == 1
    with pytest.raises(NotFound):
        log.reveal(index, actor="legal-team")  # revealed once, the sidecar is gone


def test_reveal_with_other_content_is_rejected(log: MerkleLog) -> None:
    [index] = log.append([gagged(30)])
    revealed = log.reveal(index, actor="legal-team")
    bundle = log.inclusion_bundle(revealed)
    reveal_doc = json.loads(bundle["leaf"])
    other = event_to_json(gagged(30))
    other["account"] = "carol@example.test"
    reveal_doc["content"] = canonical_json(other).decode()
    bundle["leaf"] = canonical_json(reveal_doc).decode()
    with pytest.raises(VerificationError):
        check_inclusion_bundle(bundle)  # the leaf no longer matches the signed tree
    # and even a reveal that is in the tree must open the commitment:
    from letterlock.audit.verify import check_reveal

    with pytest.raises(VerificationError, match="does not match the commitment"):
        check_reveal(json.loads(bundle["commitment"]["leaf"]), reveal_doc)


def test_forged_reveal_in_the_file_is_named(log: MerkleLog, logdir: Path) -> None:
    [index] = log.append([gagged(30)])
    revealed = log.reveal(index, actor="legal-team")
    log.close()
    lines = (logdir / EVENTS_FILE).read_bytes().split(b"\n")
    doc = json.loads(lines[revealed])
    doc["content"] = doc["content"].replace("bob@", "eve@")
    lines[revealed] = canonical_json(doc)
    (logdir / EVENTS_FILE).write_bytes(b"\n".join(lines))
    assert Problem.BAD_REVEAL in verify_log(logdir).problems()


def test_reveal_due_reveals_only_expired_orders(log: MerkleLog) -> None:
    [short] = log.append([gagged(10)])
    [long] = log.append([gagged(100)])
    [forever] = log.append([gagged(None)])
    assert {e.index for e in log.sealed_entries()} == {short, long, forever}
    assert log.reveal_due("scheduler", now=T0 + timedelta(days=5)) == []
    revealed = log.reveal_due("scheduler", now=T0 + timedelta(days=50))
    assert [log.record(i).reveals for i in revealed] == [short]
    assert {e.index for e in log.sealed_entries()} == {long, forever}
    # an indefinite order is revealed only when lifted, explicitly
    assert log.reveal_due("scheduler", now=T0 + timedelta(days=5000)) != []
    assert {e.index for e in log.sealed_entries()} == {forever}
    lifted = log.reveal(forever, actor="legal-team")
    assert log.record(lifted).reveals == forever
