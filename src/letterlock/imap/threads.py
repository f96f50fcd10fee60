"""Threading algorithms of RFC 5256 (ORDEREDSUBJECT, REFERENCES) on plain values, and
the THREAD response's nesting.

Pure: a :class:`Message` holds only what threading compares (sent date, base
subject, Message-ID, references) and the number to answer with; the command handler
(imap/commands/thread.py) gathers those from the sealed digests of the messages a
search matched. Ties between equal sent dates fall back to sequence order, as in SORT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_MSG_ID = re.compile(rb"<([^<>\s@]+@[^<>\s]+)>")


@dataclass(frozen=True)
class Message:
    seq: int
    number: int
    """Sequence number or UID: what the response names."""
    sent: float
    """RFC 5256 2.2 sent date (Date:, else the internal date) as a timestamp."""
    subject: str
    """Base subject (imap/subjects.py)."""
    reply: bool
    """The subject carried a reply/forward marker."""
    message_id: bytes | None = None
    references: tuple[bytes, ...] = ()
    """Parent ids, oldest first (References:, else In-Reply-To's first id)."""


def message_ids(value: bytes | None) -> list[bytes]:
    """The msg-ids (without angle brackets) of a Message-ID/References/In-Reply-To
    value, in order; anything that is no ``<left@right>`` is skipped."""
    return _MSG_ID.findall(value or b"")


def references_of(references: bytes | None, in_reply_to: bytes | None) -> tuple[bytes, ...]:
    """RFC 5256 4 (1): the References ids, or if there are none the first In-Reply-To
    id."""
    refs = message_ids(references)
    if refs:
        return tuple(refs)
    return tuple(message_ids(in_reply_to)[:1])


@dataclass(eq=False)
class Node:
    """A container: one message, or a dummy (``message`` None) standing for a parent
    that is referred to but not among the messages threaded."""

    message: Message | None = None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def key(self) -> tuple[float, int]:
        """Sort key: the message's (sent date, sequence), a dummy's first child's."""
        if self.message is not None:
            return (self.message.sent, self.message.seq)
        return self.children[0].key() if self.children else (0.0, 0)

    def first(self) -> Message | None:
        """The message, or a dummy's first child's."""
        if self.message is not None:
            return self.message
        return self.children[0].first() if self.children else None

    def add(self, child: Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def unlink(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def reaches(self, other: Node) -> bool:
        """Whether ``other`` is this node or one of its descendants."""
        stack = [self]
        while stack:
            node = stack.pop()
            if node is other:
                return True
            stack.extend(node.children)
        return False


def _by_date(nodes: Iterable[Node]) -> list[Node]:
    return sorted(nodes, key=Node.key)


def ordered_subject(messages: Sequence[Message]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT (RFC 5256 3): messages grouped by base subject; in each
    group, the earliest message is the parent of all the others (in date order), and
    the groups are ordered by their first message's date."""
    groups: dict[str, list[Message]] = {}
    for m in sorted(messages, key=lambda m: (m.subject, m.sent, m.seq)):
        groups.setdefault(m.subject, []).append(m)
    roots = []
    for members in groups.values():
        root = Node(members[0])
        for m in members[1:]:
            root.add(Node(m))
        roots.append(root)
    return _by_date(roots)


def references(messages: Sequence[Message]) -> list[Node]:
    """THREAD=REFERENCES (RFC 5256 4)."""
    table: dict[bytes, Node] = {}
    nodes: list[Node] = []

    def container(msg_id: bytes) -> Node:
        node = table.get(msg_id)
        if node is None:
            node = table[msg_id] = Node()
            nodes.append(node)
        return node

    def link(parent: Node, child: Node) -> bool:
        # No link that would make a loop (either side reachable from the other).
        if parent.reaches(child) or child.reaches(parent):
            return False
        parent.add(child)
        return True

    for m in sorted(messages, key=lambda m: m.seq):
        # (1A) The message's container: a dummy made by an earlier reference is filled
        # in; a missing or already used Message-ID gets a container of its own.
        node = table.get(m.message_id) if m.message_id is not None else None
        if node is None or node.message is not None:
            node = Node()
            nodes.append(node)
            if m.message_id is not None and m.message_id not in table:
                table[m.message_id] = node
        node.message = m
        # (1B) Chain the references, oldest first; a container that already has a
        # parent keeps it.
        previous: Node | None = None
        for ref in m.references:
            current = container(ref)
            if previous is not None and current.parent is None and current is not previous:
                link(previous, current)
            previous = current
        # (1C) The last reference is the message's parent, replacing any parent an
        # earlier References guessed (that link is broken even when the new one
        # would make a loop and is not made); no references: no parent.
        if previous is None:
            node.unlink()
        elif previous is not node and node.parent is not previous:
            node.unlink()
            if not node.reaches(previous):
                link(previous, node)

    # (2)-(4) The root set, without childless dummies; a dummy's children take its
    # place, except that a dummy at the root keeps two or more children under it.
    roots = _prune([n for n in nodes if n.parent is None], root=True)
    # (5) Roots by date (a dummy by its earliest child).
    for node in roots:
        if node.message is None:
            node.children = _by_date(node.children)
    roots = _by_date(roots)
    # (6) Threads whose subjects match are gathered.
    roots = _merge_subjects(roots)
    # (7) Every set of siblings by date, children before parents.
    _sort_tree(roots)
    return _by_date(roots)


def _prune(level: list[Node], root: bool) -> list[Node]:
    out: list[Node] = []
    for node in level:
        node.children = _prune(node.children, root=False)
        for child in node.children:
            child.parent = node
        if node.message is not None:
            out.append(node)
        elif not node.children:
            continue
        elif root and len(node.children) > 1:
            out.append(node)
        else:
            for child in node.children:
                child.parent = None if root else node.parent
            out.extend(node.children)
            node.children = []
    return out


def _subject(node: Node) -> tuple[str, bool]:
    first = node.first()
    return (first.subject, first.reply) if first is not None else ("", False)


def _merge_subjects(roots: list[Node]) -> list[Node]:
    table: dict[str, Node] = {}
    for node in roots:
        subject, reply = _subject(node)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (held.message is not None and (
                node.message is None or (_subject(held)[1] and not reply))):
            table[subject] = node
    out: list[Node] = []
    removed: set[int] = set()
    for node in roots:
        subject, reply = _subject(node)
        held = table.get(subject) if subject else None
        if held is None or held is node:
            continue
        if held.message is None and node.message is None:
            for child in list(node.children):
                held.add(child)
            removed.add(id(node))
        elif held.message is None or (reply and not _subject(held)[1]):
            held.add(node)
            removed.add(id(node))
        else:
            dummy = Node()
            dummy.add(held)
            dummy.add(node)
            table[subject] = dummy
            removed.add(id(node))
            out.append(dummy)
            removed.add(id(held))
    kept = [n for n in roots if id(n) not in removed]
    return kept + out


def _sort_tree(level: list[Node]) -> None:
    for node in level:
        _sort_tree(node.children)
        node.children = _by_date(node.children)


def render(roots: Sequence[Node]) -> bytes:
    """The THREAD response's data (RFC 5256 5): one parenthesised list per thread; a
    run of only children is written flat, siblings each in their own parentheses."""
    return b"".join(b"(" + _members(node) + b")" for node in roots)


def _members(node: Node) -> bytes:
    parts: list[bytes] = []
    while True:
        if node.message is not None:
            parts.append(b"%d" % node.message.number)
        if len(node.children) == 1:
            node = node.children[0]
            continue
        nested = b"".join(b"(" + _members(child) + b")" for child in node.children)
        if nested:
            parts.append(nested)
        return b" ".join(parts)
