"""Message sequence numbers <-> UIDs for one connection, stored as runs of
consecutive UIDs. A mailbox whose UIDs have few gaps (the usual case) costs a few
dozen bytes whatever its size, which keeps idle connections small."""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator


class UidMap:
    __slots__ = ("_before", "_count", "_ends", "_starts")

    def __init__(self, uids: Iterable[int] = ()) -> None:
        self._starts = array("Q")
        self._ends = array("Q")  # inclusive
        self._before = array("Q")  # messages in all earlier runs
        self._count = 0
        for uid in uids:
            self.append(uid)

    @classmethod
    def from_runs(cls, runs: Iterable[tuple[int, int]]) -> UidMap:
        """A map of ascending, non-adjacent runs of consecutive UIDs (first, last)."""
        m = cls()
        for first, last in runs:
            if m._count and first <= m._ends[-1] + 1:
                raise ValueError("runs must ascend with gaps between them")
            m._starts.append(first)
            m._ends.append(last)
            m._before.append(m._count)
            m._count += last - first + 1
        return m

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for start, end in zip(self._starts, self._ends, strict=True):
            yield from range(start, end + 1)

    @property
    def last(self) -> int:
        """The highest UID (0 when empty)."""
        return self._ends[-1] if self._count else 0

    def append(self, uid: int) -> None:
        """Add a UID above every UID present."""
        if self._count and uid <= self._ends[-1]:
            raise ValueError("UIDs must ascend")
        if self._count and uid == self._ends[-1] + 1:
            self._ends[-1] = uid
        else:
            self._starts.append(uid)
            self._ends.append(uid)
            self._before.append(self._count)
        self._count += 1

    def uid_at(self, seq: int) -> int:
        """The UID of message sequence number ``seq`` (1-based)."""
        if not 1 <= seq <= self._count:
            raise IndexError(seq)
        run = bisect.bisect_right(self._before, seq - 1) - 1
        return self._starts[run] + (seq - 1 - self._before[run])

    def seq_of(self, uid: int) -> int | None:
        run = bisect.bisect_right(self._starts, uid) - 1
        if run < 0 or uid > self._ends[run]:
            return None
        return self._before[run] + (uid - self._starts[run]) + 1

    def between(self, low: int, high: int) -> Iterator[int]:
        """UIDs present in [low, high], ascending."""
        run = max(0, bisect.bisect_right(self._starts, low) - 1)
        while run < len(self._starts) and self._starts[run] <= high:
            a = max(low, self._starts[run])
            b = min(high, self._ends[run])
            if a <= b:
                yield from range(a, b + 1)
            run += 1

    def remove(self, uid: int) -> int | None:
        """Remove ``uid``; returns the sequence number it had (None if absent)."""
        seq = self.seq_of(uid)
        if seq is None:
            return None
        run = bisect.bisect_right(self._starts, uid) - 1
        start, end = self._starts[run], self._ends[run]
        if start == end:
            del self._starts[run], self._ends[run], self._before[run]
            fix_from = run
        elif uid in (start, end):
            if uid == start:
                self._starts[run] = uid + 1
            else:
                self._ends[run] = uid - 1
            fix_from = run + 1
        else:
            self._ends[run] = uid - 1
            self._starts.insert(run + 1, uid + 1)
            self._ends.insert(run + 1, end)
            self._before.insert(run + 1, self._before[run] + (uid - start))
            fix_from = run + 2
        for i in range(fix_from, len(self._before)):
            self._before[i] -= 1
        self._count -= 1
        return seq
