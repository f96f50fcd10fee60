"""The run-length UID map behaves exactly like a sorted list of UIDs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.imap.uidmap import UidMap


@settings(max_examples=400, deadline=None)
@given(st.sets(st.integers(1, 60), max_size=40), st.lists(st.integers(1, 60), max_size=30),
       st.integers(1, 5))
def test_uidmap_matches_list_model(initial: set[int], removals: list[int],
                                   extra: int) -> None:
    model = sorted(initial)
    m = UidMap(model)
    for uid in removals:
        seq = m.remove(uid)
        if uid in model:
            assert seq == model.index(uid) + 1
            model.remove(uid)
        else:
            assert seq is None
        assert list(m) == model
        assert len(m) == len(model)
    new = (model[-1] if model else 0) + extra
    m.append(new)
    model.append(new)
    for i, uid in enumerate(model):
        assert m.uid_at(i + 1) == uid
        assert m.seq_of(uid) == i + 1
    assert list(m.between(10, 30)) == [u for u in model if 10 <= u <= 30]
    assert m.last == model[-1]


def test_a_map_made_from_runs_equals_one_made_uid_by_uid() -> None:
    uids = [1, 2, 3, 7, 9, 10, 11, 40]
    a, b = UidMap(uids), UidMap.from_runs([(1, 3), (7, 7), (9, 11), (40, 40)])
    assert list(a) == list(b) == uids and len(b) == 8 and b.last == 40
    assert [b.seq_of(u) for u in uids] == list(range(1, 9))
    assert [b.uid_at(s) for s in range(1, 9)] == uids
    with pytest.raises(ValueError):
        UidMap.from_runs([(1, 3), (4, 5)])  # adjacent runs are one run
