"""Each way of tampering with the log is detected by `verify_log` and named."""

from __future__ import annotations

import shutil
from pathlib import Path

from letterlock.audit import records, tail
from letterlock.audit.check import Problem, verify_log
from letterlock.audit.heads import read_head_file, sign_head, write_head
from letterlock.audit.keys import load_private_key, public_bytes
from letterlock.audit.layout import (
    EVENTS_FILE,
    HEAD_FILE,
    HEADS_FILE,
    LEAF_STRIDE,
    LEAVES_FILE,
    SET_ASIDE_DIR,
    level_file,
)
from letterlock.audit.store import MerkleLog, init_log
from letterlock.audit.verify import SignedHead

from .conftest import T0, build_log, numbered_event

COUNT = 40


def _lines(directory: Path) -> list[bytes]:
    return (directory / EVENTS_FILE).read_bytes().split(b"\n")[:-1]


def _write_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / EVENTS_FILE).write_bytes(b"".join(line + b"\n" for line in lines))


def _saved_head(directory: Path) -> SignedHead:
    head = read_head_file(directory / HEAD_FILE)
    assert head is not None
    return head


def test_untouched_log_is_intact(logdir: Path) -> None:
    build_log(logdir, COUNT)
    report = verify_log(logdir, [_saved_head(logdir)])
    assert report.intact, report.findings
    assert report.findings == ()
    assert report.events == COUNT
    assert report.heads_checked == COUNT + 3  # every head from size 0, head.json, saved


def test_flipped_byte_in_a_value_is_named_altered(logdir: Path) -> None:
    build_log(logdir, COUNT)
    lines = _lines(logdir)
    lines[20] = lines[20].replace(b"admin0020", b"admin0021")  # one byte, still valid JSON
    _write_lines(logdir, lines)
    report = verify_log(logdir)
    assert not report.intact
    altered = [f for f in report.findings if f.problem is Problem.ALTERED]
    assert [f.index for f in altered] == [20]
    assert Problem.REWRITTEN in report.problems()
    assert Problem.DELETED not in report.problems()


def test_flipped_byte_anywhere_is_detected(logdir: Path) -> None:
    build_log(logdir, COUNT)
    raw = bytearray((logdir / EVENTS_FILE).read_bytes())
    for offset in range(0, len(raw), 97):
        tampered = bytearray(raw)
        tampered[offset] ^= 0x01
        (logdir / EVENTS_FILE).write_bytes(bytes(tampered))
        report = verify_log(logdir)
        assert not report.intact, offset
        assert report.problems() & {Problem.ALTERED, Problem.MALFORMED}, offset
    (logdir / EVENTS_FILE).write_bytes(bytes(raw))
    assert verify_log(logdir).intact


def test_deleted_event_is_named(logdir: Path) -> None:
    build_log(logdir, COUNT)
    lines = _lines(logdir)
    del lines[17]
    _write_lines(logdir, lines)
    report = verify_log(logdir)
    deleted = [f for f in report.findings if f.problem is Problem.DELETED]
    assert len(deleted) == 1
    assert deleted[0].index == 17
    assert "event 17 is missing" in deleted[0].message
    assert Problem.ALTERED not in report.problems()
    assert Problem.REORDERED not in report.problems()


def test_reordered_events_are_named(logdir: Path) -> None:
    build_log(logdir, COUNT)
    lines = _lines(logdir)
    lines[17], lines[18] = lines[18], lines[17]
    _write_lines(logdir, lines)
    report = verify_log(logdir)
    reordered = [f for f in report.findings if f.problem is Problem.REORDERED]
    assert len(reordered) == 1
    assert "event 18 before event 17" in reordered[0].message
    assert not report.problems() & {Problem.ALTERED, Problem.DELETED}


def test_reorder_with_renumbered_indices_is_still_caught(logdir: Path) -> None:
    build_log(logdir, COUNT)
    lines = _lines(logdir)
    a, b = lines[17], lines[18]
    lines[17] = b.replace(b'"i":18', b'"i":17')
    lines[18] = a.replace(b'"i":17', b'"i":18')
    _write_lines(logdir, lines)
    report = verify_log(logdir)
    assert {f.index for f in report.findings if f.problem is Problem.ALTERED} == {17, 18}
    # the logging times now go backwards: the reorder is named too
    assert Problem.REORDERED in report.problems()


def test_truncated_tail_is_named(logdir: Path) -> None:
    build_log(logdir, COUNT)
    _write_lines(logdir, _lines(logdir)[:-5])
    report = verify_log(logdir)
    truncated = [f for f in report.findings if f.problem is Problem.TRUNCATED]
    assert truncated
    assert any("35..39" in f.message for f in truncated)
    assert Problem.DELETED not in report.problems()


def test_truncation_hidden_by_rolling_back_every_file_is_caught_by_a_saved_head(
    logdir: Path,
) -> None:
    build_log(logdir, COUNT)
    saved = _saved_head(logdir)
    # The attacker rolls the whole directory back to an earlier state of size 30 by
    # rebuilding it: events, hashes, heads, all consistent with each other.
    copy = logdir.parent / "rolled-back"
    shutil.copytree(logdir, copy)
    _write_lines(copy, _lines(copy)[:30])
    for name in (HEAD_FILE, HEADS_FILE, LEAVES_FILE):
        (copy / name).unlink()
    level = 1
    while (copy / level_file(level)).exists():
        (copy / level_file(level)).unlink()
        level += 1
    # ... and re-signs with the operator key (the writer itself no longer would)
    key = load_private_key(copy)
    head = sign_head(key, public_bytes(key), 30, tail.root_after([], _lines(copy)), T0)
    write_head(copy, head, archive=True)
    MerkleLog(copy).close()  # the writer re-derives the hash files
    assert verify_log(copy).intact  # on its own, it looks fine
    report = verify_log(copy, [saved])
    assert Problem.TRUNCATED in report.problems()
    assert any("30..39 are gone" in f.message for f in report.findings)


def test_log_replaced_by_a_consistent_but_different_one_is_named(logdir: Path) -> None:
    build_log(logdir, COUNT)
    saved = _saved_head(logdir)
    # A second, internally consistent log signed with the same operator key, holding
    # different events (one changed far back in history) and more of them.
    forged = logdir.parent / "forged"
    forged.mkdir()
    for name in ("log-key.pem", "log-key.pub"):
        shutil.copy(logdir / name, forged / name)
    with MerkleLog(forged, create=True) as log:
        for i in range(COUNT + 5):
            log.append([numbered_event(i, account="mallory@example.test" if i == 3 else None)])
    shutil.rmtree(logdir)
    shutil.copytree(forged, logdir)
    assert verify_log(logdir).intact  # self-consistent, validly signed
    report = verify_log(logdir, [saved])
    assert not report.intact
    replaced = [f for f in report.findings if f.problem is Problem.REPLACED]
    assert len(replaced) == 1
    assert "replaced or forked" in replaced[0].message


def test_log_replaced_under_a_new_key_is_named(logdir: Path, tmp_path: Path) -> None:
    build_log(logdir, COUNT)
    saved = _saved_head(logdir)
    pinned = saved.public_key
    shutil.rmtree(logdir)
    build_log(logdir, COUNT)  # a fresh key
    report = verify_log(logdir, [saved], pinned_key=pinned)
    assert Problem.REPLACED in report.problems()


def test_altered_hash_index_is_named(logdir: Path) -> None:
    build_log(logdir, COUNT)
    data = bytearray((logdir / level_file(2)).read_bytes())
    data[5] ^= 0xFF
    (logdir / level_file(2)).write_bytes(bytes(data))
    report = verify_log(logdir)
    assert report.problems() == {Problem.INDEX_DAMAGED}


def test_forged_head_signature_is_named(logdir: Path) -> None:
    build_log(logdir, 5)
    text = (logdir / HEAD_FILE).read_text()
    head = _saved_head(logdir)
    forged = text.replace(head.root_hash.hex(), "00" * 32)
    (logdir / HEAD_FILE).write_text(forged)
    assert Problem.BAD_SIGNATURE in verify_log(logdir).problems()


def test_torn_last_line_is_a_warning_and_the_writer_sets_it_aside(logdir: Path) -> None:
    build_log(logdir, 5)
    with MerkleLog(logdir) as log:  # an append that signed its pending head, then crashed
        log._stage([records.encode_event(5, T0, numbered_event(5))], T0)
    with open(logdir / EVENTS_FILE, "ab") as fh:
        fh.write(b'{"v":1,"i":5,"ki')
    report = verify_log(logdir)
    assert report.intact
    assert Problem.MALFORMED in report.problems()
    with MerkleLog(logdir) as log:
        assert log.size == 5
        log.append([numbered_event(5)])
    assert verify_log(logdir).findings == ()
    # never acknowledged, so not in the log; but kept, not deleted
    [aside] = (logdir / SET_ASIDE_DIR).iterdir()
    assert aside.read_bytes() == b'{"v":1,"i":5,"ki'


def test_leaf_index_entries_are_fixed_width(logdir: Path) -> None:
    init_log(logdir)
    with MerkleLog(logdir) as log:
        log.append([numbered_event(i) for i in range(9)])
    assert (logdir / LEAVES_FILE).stat().st_size == 9 * LEAF_STRIDE
    assert (logdir / level_file(3)).stat().st_size == 32
