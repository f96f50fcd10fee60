"""Several sessions changing one mailbox at once: each session's view (sequence
numbers -> UIDs, learnt only from EXISTS / EXPUNGE / FETCH responses) must stay
exactly consistent with the mailbox, as a stress tester checks."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from imap_script import Imap

_EXISTS = re.compile(rb"^\* (\d+) EXISTS$")
_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE$")
_FETCH_UID = re.compile(rb"^\* (\d+) FETCH \(.*UID (\d+)")
_VANISHED = re.compile(rb"^\* VANISHED (?!\(EARLIER\))(\S+)$")


def _uid_set(text: bytes) -> set[int]:
    out: set[int] = set()
    for part in text.split(b","):
        a, _, b = part.partition(b":")
        lo, hi = sorted((int(a), int(b or a)))
        out.update(range(lo, hi + 1))
    return out


class View:
    """A client's model of the selected mailbox."""

    def __init__(self) -> None:
        self.uids: list[int | None] = []

    def _drop_placeholder(self, uid: int, line: bytes) -> None:
        below = 0
        for i, u in enumerate(self.uids):
            if u is None and below < uid:
                later = [v for v in self.uids[i:] if v is not None]
                if not later or later[0] > uid:
                    del self.uids[i]
                    return
            elif u is not None:
                below = u
        raise AssertionError((line, self.uids))

    def apply(self, lines: list[bytes]) -> None:
        for line in lines:
            if m := _VANISHED.match(line):
                gone = _uid_set(m.group(1))
                known = {u for u in self.uids if u is not None}
                unknown = sorted(gone - known)
                self.uids = [u for u in self.uids if u not in gone]
                for uid in unknown:
                    # A UID not learnt yet is one of the placeholders between the known
                    # UIDs around it (UIDs ascend with sequence numbers).
                    self._drop_placeholder(uid, line)
            elif m := _EXPUNGE.match(line):
                seq = int(m.group(1))
                assert 1 <= seq <= len(self.uids), line
                del self.uids[seq - 1]
            elif m := _EXISTS.match(line):
                count = int(m.group(1))
                assert count >= len(self.uids), "EXISTS shrank without EXPUNGE"
                self.uids += [None] * (count - len(self.uids))
            elif m := _FETCH_UID.match(line):
                seq, uid = int(m.group(1)), int(m.group(2))
                assert 1 <= seq <= len(self.uids), line
                assert self.uids[seq - 1] in (None, uid), (line, self.uids)
                self.uids[seq - 1] = uid


async def _worker(imap: Imap, seed: int, rounds: int, barrier: asyncio.Barrier) -> None:
    rng = random.Random(seed)
    c = await imap.session()
    view = View()
    qresync = seed % 2 == 0
    if qresync:
        await c.command("q", "ENABLE QRESYNC")
    view.apply(await c.command("s", "SELECT INBOX"))
    view.apply(await c.command("u", "FETCH 1:* (UID)"))
    raw = b"Subject: stress %d\r\n\r\nbody\r\n"
    for i in range(rounds):
        op = rng.choice(["append", "store", "expunge", "fetch", "noop", "uidstore"])
        count = len(view.uids)
        if op == "append":
            lines = await c.command(f"a{i}", b"APPEND INBOX {%d+}\r\n" % len(raw % i)
                                    + raw % i)
        elif op == "store" and count:
            seq = rng.randint(1, count)
            lines = await c.command(f"a{i}", f"STORE {seq} +FLAGS (\\Deleted)")
        elif op == "uidstore" and count:
            lines = await c.command(f"a{i}", "UID STORE 1:* -FLAGS (\\Deleted)")
        elif op == "expunge":
            lines = await c.command(f"a{i}", "EXPUNGE")
        elif op == "fetch" and count:
            lines = await c.command(f"a{i}", f"FETCH 1:{count} (UID FLAGS)")
        else:
            lines = await c.command(f"a{i}", "NOOP")
        assert lines[-1].split()[1] in (b"OK", b"NO"), lines
        view.apply(lines)
        if qresync and None in view.uids:
            # VANISHED names UIDs, so learn the UIDs of new messages at once.
            first = view.uids.index(None) + 1
            view.apply(await c.command(f"u{i}", f"FETCH {first}:* (UID)"))
    await barrier.wait()  # every session has stopped changing the mailbox
    view.apply(await c.command("n", "NOOP"))
    lines = await c.command("f", "FETCH 1:* (UID)")
    view.apply(lines)
    assert None not in view.uids
    session = await imap.app.accounts.authenticate(imap.user, imap.password)
    box = await imap.app.mailboxes.get_mailbox(session, "INBOX")
    actual = [m.uid for m in await imap.app.mailboxes.messages(session, box.id)]
    assert view.uids == actual
    await c.command("z", "LOGOUT")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_concurrent_sessions_keep_consistent_views(imap: Imap, seed: int) -> None:
    """Regression: a session's own EXPUNGE used to advance its modseq past changes
    made earlier by other sessions, which were then never reported."""
    ref = await imap.app.accounts.resolve(imap.user)
    for i in range(5):
        await imap.app.mailboxes.append(ref, "INBOX", b"Subject: seed %d\r\n\r\nx\r\n" % i)
    sessions = 5
    barrier = asyncio.Barrier(sessions)
    await asyncio.gather(*(_worker(imap, seed * 100 + n, 60, barrier)
                           for n in range(sessions)))
