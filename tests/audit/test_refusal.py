"""The writer never signs what it finds in the file (issue 13 point 3): a forged event
after the signed head, a deleted head.json, or an edit of signed events (whitespace
included) makes it refuse to open, naming `letterlock log recover`, with nothing
truncated or re-signed; `recover_log` is the explicit, recorded repair."""

from __future__ import annotations

from pathlib import Path

import pytest

from letterlock.audit import records
from letterlock.audit.check import Problem, verify_log
from letterlock.audit.events import EventType
from letterlock.audit.layout import EVENTS_FILE, HEAD_FILE, SET_ASIDE_DIR
from letterlock.audit.recovery import TailChoice, recover_log
from letterlock.audit.store import MerkleLog
from letterlock.errors import InvalidInput, StorageError

from .conftest import T0, build_log, numbered_event


def snapshot(logdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in logdir.iterdir() if p.is_file()}


def refused(logdir: Path, match: str) -> None:
    before = snapshot(logdir)
    with pytest.raises(StorageError, match=match) as info:
        MerkleLog(logdir)
    assert "letterlock log recover" in str(info.value)
    assert snapshot(logdir) == before  # nothing truncated, nothing signed


def forge(logdir: Path, index: int) -> bytes:
    line = records.encode_event(index, T0, numbered_event(index, "mallory@example.test"))
    with open(logdir / EVENTS_FILE, "ab") as fh:
        fh.write(line + b"\n")
    return line


def test_a_forged_event_after_the_signed_head_is_refused(logdir: Path) -> None:
    build_log(logdir, 6)
    forge(logdir, 6)
    refused(logdir, "no append of this server made")


def test_a_deleted_head_is_refused_not_re_signed(logdir: Path) -> None:
    build_log(logdir, 6)
    (logdir / HEAD_FILE).unlink()
    refused(logdir, r"signed head \(head.json\) is missing")


@pytest.mark.parametrize(("edit", "refuses"), [
    (lambda data: data.replace(b'{"', b'{ "', 1), True),   # an inserted space, first event
    (lambda data: data[:-2] + b" }\n", True),              # a space in the last event
    (lambda data: data + b"\n", True),                     # an empty line after the log
    # same length, new content: left for `log verify`; the writer goes on from the
    # hashes recorded at append time
    (lambda data: data.replace(b"admin0002", b"admin0003"), False),
])
def test_an_edit_never_truncates(logdir: Path, edit: object, refuses: bool) -> None:
    build_log(logdir, 6)
    events = logdir / EVENTS_FILE
    edited = edit(events.read_bytes())  # type: ignore[operator]
    events.write_bytes(edited)
    before = snapshot(logdir)
    if refuses:
        with pytest.raises(StorageError, match="letterlock log recover"), \
                MerkleLog(logdir) as log:
            log.append([numbered_event(6)])
        assert snapshot(logdir) == before
        return
    with MerkleLog(logdir) as log:
        log.append([numbered_event(6)])
    assert Problem.ALTERED in verify_log(logdir).problems()
    assert events.read_bytes().startswith(edited)


def test_recovery_refuses_to_re_sign_edited_events(logdir: Path) -> None:
    build_log(logdir, 6)
    events = logdir / EVENTS_FILE
    events.write_bytes(events.read_bytes().replace(b'{"', b'{ "', 1))
    before = snapshot(logdir)
    with pytest.raises(StorageError, match=r"restore events\.jsonl from a backup"):
        recover_log(logdir, reason="disk check", actor="op", tail_choice=TailChoice.KEEP)
    assert snapshot(logdir) == before


def test_recovery_sets_a_forged_tail_aside_and_records_it(logdir: Path) -> None:
    build_log(logdir, 6)
    line = forge(logdir, 6)
    with pytest.raises(InvalidInput, match=r"--keep-tail .* --set-aside-tail"):
        recover_log(logdir, reason="INC-7", actor="op", tail_choice=None)
    with pytest.raises(InvalidInput, match="reason"):
        recover_log(logdir, reason=" ", actor="op", tail_choice=TailChoice.SET_ASIDE)
    done = recover_log(logdir, reason="INC-7", actor="op", tail_choice=TailChoice.SET_ASIDE)
    assert done is not None and done.kept == 0 and done.base_size == 6
    assert done.set_aside is not None and done.set_aside.read_bytes() == line + b"\n"
    assert done.set_aside.parent.name == SET_ASIDE_DIR
    with MerkleLog(logdir) as log:
        assert log.size == 7
        event = log.record(6).event
    assert event is not None and event.type is EventType.LOG_RECOVERED
    details = dict(event.details)
    assert details["reason"] == "INC-7" and details["set_aside_bytes"] == str(len(line) + 1)
    assert "no append of this server made" in details["found"]
    assert verify_log(logdir).findings == ()
    assert recover_log(logdir, reason="again", actor="op", tail_choice=None) is None


def test_recovery_of_a_deleted_head_keeps_the_events_when_told(logdir: Path) -> None:
    build_log(logdir, 6)
    (logdir / HEAD_FILE).unlink()
    done = recover_log(logdir, reason="head lost", actor="op", tail_choice=TailChoice.KEEP)
    assert done is not None and done.base_source == "heads.jsonl"
    assert done.base_size + done.kept == 6
    with MerkleLog(logdir) as log:
        assert log.size == 7
    assert verify_log(logdir).findings == ()
