"""Full verification of a log directory: recompute everything, name what is wrong.

Reads the files directly (never through the writer, which would try to repair), in
one sequential pass over ``events.jsonl``:

* every record is parsed and re-hashed; its hash is compared with the one recorded in
  ``leaves.idx`` when it was appended, which tells an altered event from one that was
  moved (its hash is found under the index it claims) or deleted (never found);
* the tree is rebuilt and its root compared with every signed head the log kept and
  every head the caller saved elsewhere (a log replaced wholesale, even re-signed with
  the operator key, cannot match a head saved before);
* every reveal must open the commitment logged at the position it names;
* the stored interior nodes (``level-KK.hash``) must match, or proofs would lie.
"""

from __future__ import annotations

import enum
import itertools
import json
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from letterlock.audit import records
from letterlock.audit.keys import load_public_key
from letterlock.audit.layout import (
    EVENTS_FILE,
    HEAD_FILE,
    HEADS_FILE,
    LEAF_STRIDE,
    LEAVES_FILE,
    NODE_STRIDE,
    level_file,
)
from letterlock.audit.verify import (
    EMPTY_ROOT,
    SignedHead,
    VerificationError,
    check_head,
    commitment_hash,
    leaf_hash,
    node_hash,
)
from letterlock.errors import InvalidInput, NotInitialised

MAX_LISTED = 5


class Problem(enum.StrEnum):
    MALFORMED = "malformed"  # a record or head that does not parse
    ALTERED = "altered"  # an event's bytes changed after it was appended
    DELETED = "deleted"  # an event is gone from the middle
    REORDERED = "reordered"  # events are present but in another order
    TRUNCATED = "truncated"  # events a signed head covers are gone from the end
    REWRITTEN = "rewritten"  # the tree no longer matches a head the log signed
    REPLACED = "replaced"  # the tree does not match a head saved outside the log
    BAD_SIGNATURE = "bad-signature"
    BAD_REVEAL = "bad-reveal"  # a reveal does not open its commitment
    INDEX_DAMAGED = "index-damaged"  # stored hashes disagree with the events
    UNSIGNED_TAIL = "unsigned-tail"  # events after the last signed head (a crash)


@dataclass(frozen=True)
class Finding:
    problem: Problem
    message: str
    index: int | None = None
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.problem}: {self.message}"


@dataclass(frozen=True)
class LogReport:
    events: int
    heads_checked: int
    reveals_checked: int
    latest_head: SignedHead | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def intact(self) -> bool:
        return not any(f.fatal for f in self.findings)

    def problems(self) -> set[Problem]:
        return {f.problem for f in self.findings}


@dataclass
class _HeadCheck:
    head: SignedHead
    source: str
    saved_outside: bool


def verify_log(
    directory: Path,
    saved_heads: Sequence[SignedHead] = (),
    pinned_key: bytes | None = None,
) -> LogReport:
    """Check the whole log under ``directory``; ``saved_heads`` are heads the caller
    kept from earlier (e.g. ``letterlock log head --json`` output)."""
    findings: list[Finding] = []
    if not (directory / EVENTS_FILE).exists():
        raise NotInitialised(f"no audit log in {directory}")
    log_key = load_public_key(directory)
    trusted_key = pinned_key or log_key
    if log_key != trusted_key:
        findings.append(
            Finding(Problem.REPLACED, "the log's key is not the key you pinned: a different log")
        )
    heads, latest = _collect_heads(directory, trusted_key, saved_heads, findings)

    idx = _read_all(directory / LEAVES_FILE)
    n_idx = len(idx) // LEAF_STRIDE
    levels = _read_levels(directory)

    def recorded(i: int) -> bytes:
        return idx[i * LEAF_STRIDE : i * LEAF_STRIDE + 32]

    by_size: dict[int, list[_HeadCheck]] = {}
    for h in heads:
        by_size.setdefault(h.head.tree_size, []).append(h)
    roots: dict[int, bytes] = {0: EMPTY_ROOT}

    found = bytearray(n_idx)
    altered_at: set[int] = set()
    order = array("q")  # claimed indices of intact or moved events, by position
    commitments: dict[int, bytes] = {}
    reveals = 0
    stack: list[tuple[int, bytes]] = []
    prev_time: datetime | None = None
    time_regressions: list[int] = []
    altered: list[Finding] = []
    position = -1
    for position, line in _lines(directory / EVENTS_FILE, findings):
        digest = leaf_hash(line)
        rec: records.LogRecord | None
        try:
            rec = records.decode(line)
        except InvalidInput as exc:
            rec = None
            findings.append(
                Finding(Problem.MALFORMED, f"record at position {position}: {exc}", position)
            )
        claimed = rec.index if rec is not None else None
        if position < n_idx and digest == recorded(position):
            found[position] = 1
            order.append(position)
        elif (
            claimed is not None
            and claimed != position
            and 0 <= claimed < n_idx
            and (digest == recorded(claimed))
        ):
            found[claimed] = 1
            order.append(claimed)
        elif position < n_idx:
            altered_at.add(position)
            if claimed not in (None, position) and claimed is not None and claimed < n_idx:
                altered_at.add(claimed)
            altered.append(
                Finding(
                    Problem.ALTERED,
                    f"event {position}: its bytes no longer hash to the leaf recorded "
                    "when it was appended",
                    position,
                )
            )
        if rec is not None:
            if prev_time is not None and rec.logged_at < prev_time:
                time_regressions.append(position)
            prev_time = rec.logged_at
            if rec.kind == "commitment" and rec.commitment is not None:
                commitments[rec.index] = rec.commitment
            elif rec.kind == "reveal":
                reveals += 1
                _check_reveal(rec, commitments, findings)
        stack.append((0, digest))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            level, right = stack.pop()
            _, left = stack.pop()
            stack.append((level + 1, node_hash(left, right)))
        size = position + 1
        if size in by_size:
            roots[size] = _fold(stack)
    events = position + 1

    findings.extend(altered[:MAX_LISTED])
    if len(altered) > MAX_LISTED:
        findings.append(
            Finding(Problem.ALTERED, f"... and {len(altered) - MAX_LISTED} more altered events")
        )
    _classify_missing(found, altered_at, events, n_idx, findings)
    _classify_order(order, time_regressions, findings)
    _compare_heads(heads, roots, events, findings)
    if latest is not None and events > latest.tree_size:
        findings.append(
            Finding(
                Problem.UNSIGNED_TAIL,
                f"{events - latest.tree_size} events after the latest signed head "
                f"(size {latest.tree_size}); the writer takes them in only if they are its own "
                "unfinished append (head.pending.json), else it refuses to start until "
                "`letterlock log recover`",
                latest.tree_size,
                fatal=False,
            )
        )
    damaged_nodes = _check_stored_nodes(idx, levels)
    if damaged_nodes:
        findings.append(
            Finding(
                Problem.INDEX_DAMAGED,
                f"{damaged_nodes} stored interior hashes disagree with the events; "
                "proofs served from them would not verify",
            )
        )
    return LogReport(
        events=events,
        heads_checked=len(heads),
        reveals_checked=reveals,
        latest_head=latest,
        findings=tuple(findings),
    )


def _collect_heads(
    directory: Path,
    key: bytes,
    saved: Sequence[SignedHead],
    findings: list[Finding],
) -> tuple[list[_HeadCheck], SignedHead | None]:
    heads: list[_HeadCheck] = []
    latest: SignedHead | None = None

    def take(head: SignedHead, source: str, outside: bool) -> None:
        nonlocal latest
        try:
            check_head(head, key)
        except VerificationError as exc:
            problem = Problem.REPLACED if outside else Problem.BAD_SIGNATURE
            findings.append(Finding(problem, f"{source}: {exc}"))
            return
        heads.append(_HeadCheck(head, source, outside))
        if not outside and (latest is None or head.tree_size >= latest.tree_size):
            latest = head

    for number, line in enumerate(_read_all(directory / HEADS_FILE).splitlines(), 1):
        if not line.strip():
            continue
        try:
            take(SignedHead.from_json(json.loads(line)), f"{HEADS_FILE} line {number}", False)
        except (ValueError, VerificationError) as exc:
            findings.append(Finding(Problem.MALFORMED, f"{HEADS_FILE} line {number}: {exc}"))
    text = _read_all(directory / HEAD_FILE)
    if text:
        try:
            take(SignedHead.from_json(json.loads(text)), HEAD_FILE, False)
        except (ValueError, VerificationError) as exc:
            findings.append(Finding(Problem.MALFORMED, f"{HEAD_FILE}: {exc}"))
    for number, head in enumerate(saved, 1):
        take(head, f"saved head #{number} (size {head.tree_size}, {head.timestamp})", True)
    # heads the log signed must only grow, in size and in time
    own = sorted((h.head for h in heads if not h.saved_outside), key=lambda h: h.timestamp)
    for earlier, later in itertools.pairwise(own):
        if later.tree_size < earlier.tree_size:
            findings.append(
                Finding(
                    Problem.TRUNCATED,
                    f"the head signed at {later.timestamp} has size {later.tree_size}, "
                    f"smaller than the {earlier.tree_size} signed at {earlier.timestamp}",
                )
            )
            break
    return heads, latest


def _check_reveal(
    rec: records.LogRecord, commitments: dict[int, bytes], findings: list[Finding]
) -> None:
    target = rec.reveals
    if target is None or target not in commitments:
        findings.append(
            Finding(
                Problem.BAD_REVEAL,
                f"event {rec.index} reveals event {target}, which is not an earlier commitment",
                rec.index,
            )
        )
        return
    assert rec.salt is not None and rec.content is not None
    if commitment_hash(rec.salt, rec.content.encode("utf-8")) != commitments[target]:
        findings.append(
            Finding(
                Problem.BAD_REVEAL,
                f"event {rec.index}: the revealed content does not match the commitment "
                f"logged as event {target}",
                rec.index,
            )
        )


def _classify_missing(
    found: bytearray, altered_at: set[int], events: int, n_idx: int, findings: list[Finding]
) -> None:
    missing = [i for i in range(n_idx) if not found[i] and i not in altered_at]
    if not missing:
        return
    # events gone from the very end of what was recorded: the tail was cut
    tail: list[int] = []
    if missing[-1] == n_idx - 1:
        j = len(missing) - 1
        while j > 0 and missing[j - 1] == missing[j] - 1:
            j -= 1
        tail = missing[j:]
    middle = missing[: len(missing) - len(tail)]
    if tail:
        findings.append(
            Finding(
                Problem.TRUNCATED,
                f"events {tail[0]}..{tail[-1]} were appended but the log now ends "
                f"after {events} events: the tail was cut",
                tail[0],
            )
        )
    if middle:
        findings.append(
            Finding(
                Problem.DELETED,
                f"{_ranges(middle)} {'is' if len(middle) == 1 else 'are'} missing: "
                "deleted from the log",
                middle[0],
            )
        )


def _classify_order(order: array[int], regressions: list[int], findings: list[Finding]) -> None:
    swaps = [(a, b) for a, b in itertools.pairwise(order) if a > b]
    if swaps:
        listed = ", ".join(f"event {a} before event {b}" for a, b in swaps[:MAX_LISTED])
        findings.append(
            Finding(Problem.REORDERED, f"events are out of order: {listed}", swaps[0][1])
        )
    elif regressions:
        findings.append(
            Finding(
                Problem.REORDERED,
                f"logging time goes backwards at position {regressions[0]}",
                regressions[0],
            )
        )


def _compare_heads(
    heads: list[_HeadCheck], roots: dict[int, bytes], events: int, findings: list[Finding]
) -> None:
    own_reported = False
    largest_gone: _HeadCheck | None = None
    for check in sorted(heads, key=lambda h: h.head.tree_size):
        head = check.head
        if head.tree_size > events:
            if largest_gone is None or head.tree_size > largest_gone.head.tree_size:
                largest_gone = check
            continue
        if roots.get(head.tree_size) == head.root_hash:
            continue
        if check.saved_outside:
            findings.append(
                Finding(
                    Problem.REPLACED,
                    f"{check.source}: the log's first {head.tree_size} events hash to "
                    f"{roots[head.tree_size].hex()[:16]}…, not the signed "
                    f"{head.root_hash.hex()[:16]}…: the log was replaced or forked",
                )
            )
        elif not own_reported:
            own_reported = True
            findings.append(
                Finding(
                    Problem.REWRITTEN,
                    f"the first {head.tree_size} events no longer hash to the root the log "
                    f"signed at {head.timestamp} ({check.source})",
                )
            )
    if largest_gone is not None:
        head = largest_gone.head
        findings.append(
            Finding(
                Problem.TRUNCATED,
                f"{largest_gone.source} covers {head.tree_size} events but the log holds "
                f"{events}: events {events}..{head.tree_size - 1} are gone",
                events,
            )
        )


def _check_stored_nodes(idx: bytes, levels: dict[int, bytes]) -> int:
    """Count stored interior nodes that are not the hash of their stored children."""
    bad = 0
    children = [idx[i : i + 32] for i in range(0, len(idx), LEAF_STRIDE)]
    level = 1
    while level in levels:
        stored = levels[level]
        parents = [stored[i : i + NODE_STRIDE] for i in range(0, len(stored), NODE_STRIDE)]
        if len(parents) != len(children) // 2:
            bad += abs(len(parents) - len(children) // 2)
        for j, parent in enumerate(parents[: len(children) // 2]):
            if node_hash(children[2 * j], children[2 * j + 1]) != parent:
                bad += 1
        children = parents
        level += 1
    return bad


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    acc = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        acc = node_hash(h, acc)
    return acc


def _ranges(indices: list[int]) -> str:
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], -1]:
        if i == prev + 1:
            prev = i
            continue
        parts.append(f"event {start}" if start == prev else f"events {start}..{prev}")
        start = prev = i
    text = ", ".join(parts[:MAX_LISTED])
    return text + (f" and {len(parts) - MAX_LISTED} more ranges" if len(parts) > MAX_LISTED else "")


def _lines(path: Path, findings: list[Finding]) -> Iterator[tuple[int, bytes]]:
    position = 0
    pending = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield position, line
                position += 1
    if pending:
        findings.append(
            Finding(
                Problem.MALFORMED,
                f"the event file ends in a partial record after position {position - 1}",
                position,
                fatal=False,
            )
        )


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _read_levels(directory: Path) -> dict[int, bytes]:
    levels: dict[int, bytes] = {}
    level = 1
    while os.path.exists(directory / level_file(level)):
        levels[level] = (directory / level_file(level)).read_bytes()
        level += 1
    return levels
