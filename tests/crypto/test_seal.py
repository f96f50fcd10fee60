"""Sealed blobs: round trips, range reads, and every kind of tampering detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.crypto import keys, seal
from letterlock.errors import CryptoError

PAIR = keys.KeyPair.generate()
OPENER = seal.Opener(PAIR.private, PAIR.key_id)


@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700))
@settings(max_examples=60, deadline=None)
def test_round_trip_any_size_and_chunking(data: bytes, chunk: int) -> None:
    blob = seal.seal(data, PAIR.public, PAIR.key_id, chunk)
    assert len(blob) == seal.sealed_size(len(data), chunk)
    assert OPENER.open(blob) == data


@given(data=st.binary(min_size=1, max_size=3000), start=st.integers(0, 3000),
       length=st.integers(0, 3000))
@settings(max_examples=60, deadline=None)
def test_range_read_matches_slice(data: bytes, start: int, length: int) -> None:
    blob = seal.seal(data, PAIR.public, PAIR.key_id, 128)
    assert OPENER.open_range(blob, start, length) == data[start : start + length]


def test_header_names_version_and_key() -> None:
    blob = seal.seal(b"x", PAIR.public, PAIR.key_id)
    header = seal.SealHeader.parse(blob)
    assert blob[:4] == b"LLS1" and blob[4] == 1
    assert header.key_id == PAIR.key_id


def test_plaintext_does_not_appear() -> None:
    marker = b"MARKER-plaintext-visible"
    assert marker not in seal.seal(marker * 10, PAIR.public, PAIR.key_id)


@pytest.mark.parametrize("position", [0, 10, seal.HEADER_SIZE + 3, -1])
def test_flipped_byte_is_detected(position: int) -> None:
    blob = bytearray(seal.seal(b"hello " * 100, PAIR.public, PAIR.key_id, 64))
    blob[position] ^= 0x01
    with pytest.raises(CryptoError):
        OPENER.open(bytes(blob))


def test_truncation_at_chunk_boundary_is_detected() -> None:
    blob = seal.seal(b"a" * 256, PAIR.public, PAIR.key_id, 64)
    with pytest.raises(CryptoError):
        OPENER.open(blob[: seal.HEADER_SIZE + 2 * (64 + seal.TAG)])


def test_reordered_chunks_are_detected() -> None:
    blob = seal.seal(b"a" * 64 + b"b" * 64 + b"c" * 10, PAIR.public, PAIR.key_id, 64)
    step = 64 + seal.TAG
    body = blob[seal.HEADER_SIZE :]
    swapped = blob[: seal.HEADER_SIZE] + body[step : 2 * step] + body[:step] + body[2 * step :]
    with pytest.raises(CryptoError):
        OPENER.open(swapped)


def test_other_key_cannot_open() -> None:
    other = keys.KeyPair.generate()
    blob = seal.seal(b"secret", PAIR.public, PAIR.key_id)
    with pytest.raises(CryptoError):
        seal.Opener(other.private, other.key_id).open(blob)
    # even when it claims the right key id
    with pytest.raises(CryptoError):
        seal.Opener(other.private, PAIR.key_id).open(blob)


def test_open_with_key_needs_the_blobs_own_content_key() -> None:
    one = seal.seal(b"first message", PAIR.public, PAIR.key_id)
    two = seal.seal(b"second message", PAIR.public, PAIR.key_id)
    key_one = OPENER.content_key(one)
    assert seal.open_with_key(one, key_one) == b"first message"
    with pytest.raises(CryptoError):
        seal.open_with_key(two, key_one)  # a blob swapped in for another is refused
    tampered = bytearray(one)
    tampered[-1] ^= 1
    with pytest.raises(CryptoError):
        seal.open_with_key(bytes(tampered), key_one)


def test_derived_keys_differ_by_purpose_and_account() -> None:
    other = keys.KeyPair.generate()
    mine = OPENER.derive_key(b"digests")
    assert mine == seal.Opener(PAIR.private, PAIR.key_id).derive_key(b"digests")
    assert mine != OPENER.derive_key(b"other purpose")
    assert mine != seal.Opener(other.private, other.key_id).derive_key(b"digests")


def test_a_box_opens_only_with_its_key_and_associated_data() -> None:
    key = OPENER.derive_key(b"digests")
    box = seal.seal_box(key, b"pack", b"mailbox 1")
    assert seal.open_box(key, box, b"mailbox 1") == b"pack"
    with pytest.raises(CryptoError):
        seal.open_box(key, box, b"mailbox 2")
    with pytest.raises(CryptoError):
        seal.open_box(OPENER.derive_key(b"x"), box, b"mailbox 1")
    with pytest.raises(CryptoError):
        seal.open_box(key, box[:-1] + bytes([box[-1] ^ 1]), b"mailbox 1")
