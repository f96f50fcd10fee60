"""RFC 9162 tree hashing, inclusion and consistency proofs: the stored log against a
direct transcription of the RFC's recursive definitions, and published test vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.audit.store import MerkleLog
from letterlock.audit.verify import (
    EMPTY_ROOT,
    VerificationError,
    check_consistency,
    check_inclusion,
    leaf_hash,
    node_hash,
)

from .conftest import build_log

# The eight leaves of the RFC 6962 reference test suite and the roots of their prefixes.
VECTOR_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return [*path(m, hashes[:k]), mth(hashes[k:])]
    return [*path(m - k, hashes[k:]), mth(hashes[:k])]


def subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if whole else [mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, hashes[:k], whole), mth(hashes[k:])]
    return [*subproof(m - k, hashes[k:], False), mth(hashes[:k])]


VECTOR_HASHES = [leaf_hash(bytes.fromhex(x)) for x in VECTOR_LEAVES]


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_vector_roots(size: int) -> None:
    assert mth(VECTOR_HASHES[:size]).hex() == VECTOR_ROOTS[size - 1]


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_vector_inclusion_and_consistency_proofs_verify(size: int) -> None:
    hashes = VECTOR_HASHES[:size]
    root = mth(hashes)
    for m in range(size):
        check_inclusion(m, size, hashes[m], path(m, hashes), root)
    for first in range(1, size + 1):
        proof = subproof(first, hashes, True) if first < size else []
        check_consistency(first, size, mth(hashes[:first]), root, proof)


def test_inclusion_rejects_wrong_leaf_index_and_path() -> None:
    hashes = VECTOR_HASHES[:7]
    root = mth(hashes)
    good = path(3, hashes)
    with pytest.raises(VerificationError):
        check_inclusion(4, 7, hashes[3], good, root)
    with pytest.raises(VerificationError):
        check_inclusion(3, 7, hashes[4], good, root)
    with pytest.raises(VerificationError):
        check_inclusion(3, 7, hashes[3], good[:-1], root)
    with pytest.raises(VerificationError):
        check_inclusion(3, 7, hashes[3], [*good, good[0]], root)
    with pytest.raises(VerificationError):
        check_inclusion(6, 7, hashes[6], good, root)


def test_consistency_rejects_a_rewritten_prefix() -> None:
    hashes = VECTOR_HASHES[:8]
    forged = [leaf_hash(b"other"), *hashes[1:]]
    proof = subproof(5, hashes, True)
    with pytest.raises(VerificationError, match="rewritten"):
        check_consistency(5, 8, mth(forged[:5]), mth(hashes), proof)
    with pytest.raises(VerificationError, match="forked"):
        check_consistency(8, 8, mth(forged), mth(hashes), [])
    with pytest.raises(VerificationError):
        check_consistency(5, 8, mth(hashes[:5]), mth(hashes), proof[:-1])


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> MerkleLog:
    directory: Path = tmp_path_factory.mktemp("merkle") / "audit"
    build_log(directory, 70, batch=3)
    return MerkleLog(directory, writable=False)


def test_stored_roots_match_the_rfc_definition_at_every_size(stored: MerkleLog) -> None:
    hashes = [leaf_hash(stored.leaf(i)) for i in range(stored.size)]
    for size in range(stored.size + 1):
        assert stored.root(size) == mth(hashes[:size])
    assert stored.head().root_hash == mth(hashes)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_stored_proofs_equal_the_rfc_definition(stored: MerkleLog, data: st.DataObject) -> None:
    hashes = [leaf_hash(stored.leaf(i)) for i in range(stored.size)]
    size = data.draw(st.integers(1, stored.size))
    index = data.draw(st.integers(0, size - 1))
    proof = stored.inclusion_proof(index, size)
    assert proof == path(index, hashes[:size])
    check_inclusion(index, size, hashes[index], proof, mth(hashes[:size]))
    first = data.draw(st.integers(0, size))
    cproof = stored.consistency_proof(first, size)
    if 0 < first < size:
        assert cproof == subproof(first, hashes[:size], True)
    check_consistency(first, size, mth(hashes[:first]), mth(hashes[:size]), cproof)
