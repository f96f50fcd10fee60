"""RFC 9162 (2.1) Merkle tree maths over stored subtree hashes: pure, no I/O.

``node(level, position)`` gives the hash of the complete, aligned subtree of
``2**level`` leaves at ``position`` (level 0: a leaf hash); the log reads it from its
hash files. Every range the RFC's recursion visits is split into such subtrees, so a
root or a proof costs O(log n) stored nodes. The log's right edge is kept as a stack
of complete subtrees, left to right, which appending a leaf extends and merges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from letterlock.audit.verify import EMPTY_ROOT, node_hash

NodeReader = Callable[[int, int], bytes]
Stack = list[tuple[int, bytes]]  # (level, hash) of complete subtrees, left to right


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(node: NodeReader, lo: int, hi: int) -> bytes:
    """MTH of leaves [lo, hi) for a range that occurs in the RFC 9162 recursion."""
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and lo % n == 0:
        return node(n.bit_length() - 1, lo // n)
    k = split_point(n)
    return node_hash(subtree_hash(node, lo, lo + k), subtree_hash(node, lo + k, hi))


def inclusion_path(node: NodeReader, m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) (RFC 9162, 2.1.3.1)."""
    n = hi - lo
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*inclusion_path(node, m, lo, lo + k), subtree_hash(node, lo + k, hi)]
    return [*inclusion_path(node, m - k, lo + k, hi), subtree_hash(node, lo, lo + k)]


def consistency_path(node: NodeReader, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], whole) (RFC 9162, 2.1.4.1)."""
    n = hi - lo
    if m == n:
        return [] if whole else [subtree_hash(node, lo, hi)]
    k = split_point(n)
    if m <= k:
        return [*consistency_path(node, m, lo, lo + k, whole), subtree_hash(node, lo + k, hi)]
    return [*consistency_path(node, m - k, lo + k, hi, False), subtree_hash(node, lo, lo + k)]


def push_leaf(stack: Stack, digest: bytes) -> list[tuple[int, bytes]]:
    """Add a leaf hash to the right edge; returns the parent nodes it completes, as
    (level, hash), lowest first."""
    parents = []
    stack.append((0, digest))
    while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
        level, right = stack.pop()
        _, left = stack.pop()
        parent = node_hash(left, right)
        stack.append((level + 1, parent))
        parents.append((level + 1, parent))
    return parents


def stack_root(stack: Sequence[tuple[int, bytes]]) -> bytes:
    """The root of the tree whose right edge is ``stack``."""
    if not stack:
        return EMPTY_ROOT
    acc = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        acc = node_hash(h, acc)
    return acc


def stack_for_size(node: NodeReader, size: int) -> Stack:
    """The right edge of a tree of ``size`` leaves, from stored nodes."""
    stack = []
    position = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            stack.append((level, node(level, position >> level)))
            position += 1 << level
    return stack
