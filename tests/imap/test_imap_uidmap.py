"""The run-length UID map behaves exactly like a sorted list of UIDs."""

from __future__ import annotations

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
