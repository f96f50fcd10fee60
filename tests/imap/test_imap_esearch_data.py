"""ESEARCH return data and update-context diffs (imap/esearch.py) on plain values: the
sort-order sets, PARTIAL windows, and ADDTO/REMOVEFROM positions a client applies in
order to reach the new result. The return data matches what Dovecot 2.3.19 answers
for the same SORT/SEARCH RETURN commands (tests/imap/test_imap_esort_context.py)."""

from __future__ import annotations

import re

from letterlock.imap import esearch
from letterlock.imap.parsing.search import AllKey


def test_ordered_set_ranges_only_upwards() -> None:
    assert esearch.ordered_set([2, 4, 3, 1, 5, 6]) == "2,4,3,1,5:6"
    assert esearch.ordered_set([3, 2, 1]) == "3,2,1"
    assert esearch.ordered_set([7, 8, 9, 1]) == "7:9,1"
    assert esearch.ordered_set([]) == ""


def test_return_data() -> None:
    nums = [4, 2, 6, 1, 5, 3]
    assert esearch.return_data(nums, ("MIN", "MAX", "COUNT"), None) == b" MIN 4 MAX 3 COUNT 6"
    assert esearch.return_data(nums, ("COUNT",), (2, 3)) == b" COUNT 6 PARTIAL (2:3 2,6)"
    assert esearch.return_data(nums, (), (20, 30)) == b" PARTIAL (20:30 NIL)"
    assert esearch.return_data([], ("MIN", "MAX", "ALL", "COUNT"), None) == b" COUNT 0"


def _apply(old: list[int], line: bytes) -> list[int]:
    """What a client does with REMOVEFROM/ADDTO pairs of a SORT context (RFC 5267
    4.3.3/4.3.4), each pair in order, sets expanded in their written order."""
    result = list(old)
    for kind, body in re.findall(rb"(REMOVEFROM|ADDTO) \(([^)]*)\)", line):
        words = body.split()
        for pos, numbers in zip(words[::2], words[1::2], strict=True):
            items = [int(n) for n in numbers.split(b",")]
            at = int(pos) - 1
            if kind == b"REMOVEFROM":
                for n in items:
                    assert result[at] == n
                    del result[at]
            else:
                result[at:at] = items
    return result


def test_sort_context_diffs_reach_the_new_result() -> None:
    cases = [([1, 2, 3, 4, 5], [1, 3, 5]), ([1, 2, 3], [9, 1, 8, 2, 3, 7]),
             ([5, 4, 3, 2, 1], [6, 5, 3, 1, 0]), ([], [2, 1]), ([3, 1], [])]
    for old, new in cases:
        ctx = esearch.UpdateContext("t", True, AllKey(), None, ((False, "DATE"),), list(old))
        line = esearch.update(ctx, new, lambda uid: uid)
        assert line is not None
        assert _apply(old, line) == new, (old, new, line)
        assert ctx.results == new
        assert esearch.update(ctx, new, lambda uid: uid) is None


def test_search_context_uses_position_zero_and_sequence_numbers() -> None:
    ctx = esearch.UpdateContext("B1", False, AllKey(), None, None, [10, 20, 30])
    seqs = {10: 1, 20: 2, 30: 3, 40: 4, 50: 5}
    line = esearch.update(ctx, [10, 40, 50], seqs.get)
    assert line == b'ESEARCH (TAG "B1") REMOVEFROM (0 2:3) ADDTO (0 4:5)'
    assert esearch.expunge_removals([ctx], [40, 99], seqs.get) == [
        b'ESEARCH (TAG "B1") REMOVEFROM (0 4)']
    assert ctx.results == [10, 50]


def test_begin_refuses_reused_tags_and_too_many() -> None:
    contexts: list[esearch.UpdateContext] = []
    for n in range(esearch.MAX_CONTEXTS):
        assert esearch.begin(contexts, esearch.UpdateContext(f"t{n}", True, AllKey(), None,
                                                             None)) is None
    assert esearch.begin(contexts, esearch.UpdateContext("t0", True, AllKey(), None,
                                                         None)) == "in use"
    assert esearch.begin(contexts, esearch.UpdateContext("new", True, AllKey(), None,
                                                         None)) == "full"
