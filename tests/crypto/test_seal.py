"""Sealed blobs: round trips, range reads, and every kind of tampering detected; the
bound format (version 2: account, message id and part in the associated data) and
the version 1 blobs written before it, which must stay readable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.crypto import keys, seal
from letterlock.errors import CryptoError
from support import legacy_seal

PAIR = keys.KeyPair.generate()
OPENER = seal.Opener(PAIR.private, PAIR.key_id)
ACCOUNT = "5f0c3b1e9a7d4c2b8e6f1a0d3c5b7e9f"
BODY = seal.Expect(ACCOUNT, "body")
SUMMARY = seal.Expect(ACCOUNT, "summary")


@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700))
@settings(max_examples=60, deadline=None)
def test_round_trip_any_size_and_chunking(data: bytes, chunk: int) -> None:
    blob = seal.seal(data, PAIR.public, PAIR.key_id, chunk)
    assert len(blob) == seal.sealed_size(len(data), chunk, seal.LEGACY_VERSION)
    assert OPENER.open(blob) == data
    body, summary = seal.seal_parts([("body", data), ("summary", data[:10])], PAIR.public,
                                    PAIR.key_id, ACCOUNT, chunk)
    assert len(body) == seal.sealed_size(len(data), chunk)
    assert OPENER.open(body, BODY) == data
    assert OPENER.open(summary, SUMMARY) == data[:10]


@given(data=st.binary(min_size=1, max_size=3000), start=st.integers(0, 3000),
       length=st.integers(0, 3000))
@settings(max_examples=60, deadline=None)
def test_range_read_matches_slice(data: bytes, start: int, length: int) -> None:
    blob = seal.seal(data, PAIR.public, PAIR.key_id, 128)
    assert OPENER.open_range(blob, start, length) == data[start : start + length]
    [bound] = seal.seal_parts([("body", data)], PAIR.public, PAIR.key_id, ACCOUNT, 128)
    assert OPENER.open_range(bound, start, length, BODY) == data[start : start + length]


def test_header_names_version_and_key() -> None:
    blob = seal.seal(b"x", PAIR.public, PAIR.key_id)
    header = seal.SealHeader.parse(blob)
    assert blob[:4] == b"LLS1" and blob[4] == 1
    assert header.key_id == PAIR.key_id
    body, summary = seal.seal_parts([("body", b"x"), ("summary", b"y")], PAIR.public,
                                    PAIR.key_id, ACCOUNT)
    first, second = seal.SealHeader.parse(body), seal.SealHeader.parse(summary)
    assert body[:4] == b"LLS1" and body[4] == 2 and first.key_id == PAIR.key_id
    assert (first.part_name, second.part_name) == ("body", "summary")
    assert first.message_id == second.message_id and len(first.message_id) == 16
    [again] = seal.seal_parts([("body", b"x")], PAIR.public, PAIR.key_id, ACCOUNT)
    assert seal.SealHeader.parse(again).message_id != first.message_id


def test_plaintext_does_not_appear() -> None:
    marker = b"MARKER-plaintext-visible"
    assert marker not in seal.seal(marker * 10, PAIR.public, PAIR.key_id)


@pytest.mark.parametrize("position", [0, 10, seal.LEGACY_HEADER_SIZE + 3, -1])
def test_flipped_byte_is_detected(position: int) -> None:
    blob = bytearray(seal.seal(b"hello " * 100, PAIR.public, PAIR.key_id, 64))
    blob[position] ^= 0x01
    with pytest.raises(CryptoError):
        OPENER.open(bytes(blob))


@pytest.mark.parametrize("position", [0, 10, seal.LEGACY_HEADER_SIZE, seal.HEADER_SIZE - 1,
                                      seal.HEADER_SIZE + 3, -1])
def test_flipped_byte_of_a_bound_blob_is_detected(position: int) -> None:
    [blob] = seal.seal_parts([("body", b"hello " * 100)], PAIR.public, PAIR.key_id, ACCOUNT,
                             64)
    changed = bytearray(blob)
    changed[position] ^= 0x01
    with pytest.raises(CryptoError):
        OPENER.open(bytes(changed), BODY)


def test_truncation_at_chunk_boundary_is_detected() -> None:
    blob = seal.seal(b"a" * 256, PAIR.public, PAIR.key_id, 64)
    with pytest.raises(CryptoError):
        OPENER.open(blob[: seal.LEGACY_HEADER_SIZE + 2 * (64 + seal.TAG)])
    [bound] = seal.seal_parts([("body", b"a" * 256)], PAIR.public, PAIR.key_id, ACCOUNT, 64)
    for end in (seal.HEADER_SIZE + 2 * (64 + seal.TAG), seal.HEADER_SIZE, 100, 0):
        with pytest.raises(CryptoError):
            OPENER.open(bound[:end], BODY)


def test_reordered_chunks_are_detected() -> None:
    blob = seal.seal(b"a" * 64 + b"b" * 64 + b"c" * 10, PAIR.public, PAIR.key_id, 64)
    step = 64 + seal.TAG
    head = seal.LEGACY_HEADER_SIZE
    body = blob[head:]
    swapped = blob[:head] + body[step : 2 * step] + body[:step] + body[2 * step :]
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


def test_a_bound_blob_opens_only_as_its_account_message_and_part() -> None:
    body, summary = seal.seal_parts([("body", b"the body"), ("summary", b"the summary")],
                                    PAIR.public, PAIR.key_id, ACCOUNT)
    message_id = seal.SealHeader.parse(body).message_id
    key = OPENER.content_key(summary, SUMMARY)
    exact = seal.Expect(ACCOUNT, "body", message_id, PAIR.key_id)
    assert seal.open_with_key(body, key, exact) == b"the body"
    assert OPENER.open(body, exact) == b"the body"
    with pytest.raises(CryptoError, match="a sealed body where the summary belongs"):
        OPENER.open(body, SUMMARY)
    with pytest.raises(CryptoError, match="a sealed summary where the body belongs"):
        seal.open_with_key(summary, key, BODY)
    with pytest.raises(CryptoError, match="a sealed body where the summary belongs"):
        OPENER.content_key(body, SUMMARY)
    with pytest.raises(CryptoError, match="of another message"):
        OPENER.open(body, seal.Expect(ACCOUNT, "body", bytes(16)))
    with pytest.raises(CryptoError, match="another account's key"):
        OPENER.open(body, seal.Expect(ACCOUNT, "body", None, bytes(16)))
    # Another account id (with the same key: a row moved between accounts) fails the
    # tag: the account is in the associated data, not in the blob.
    with pytest.raises(CryptoError, match="failed authentication"):
        OPENER.open(body, seal.Expect("another-account", "body"))
    with pytest.raises(CryptoError, match="opened without saying whose"):
        OPENER.open(body)
    # A header edited to claim the other part does not open either.
    claimed = bytearray(body)
    claimed[seal.LEGACY_HEADER_SIZE] = seal.PARTS["summary"]
    with pytest.raises(CryptoError):
        OPENER.open(bytes(claimed), SUMMARY)
    with pytest.raises(ValueError, match="unknown message part"):
        seal.seal_parts([("attachment", b"x")], PAIR.public, PAIR.key_id, ACCOUNT)


def test_a_blob_in_the_old_format_still_opens() -> None:
    data = b"written by the previous version " * 10
    [blob] = legacy_seal.seal_v1([data], PAIR.public, PAIR.key_id, 64)
    header = seal.SealHeader.parse(blob)
    assert (header.version, header.part, header.message_id) == (1, 0, b"")
    # Readers now always say what they expect; a version 1 blob names no part, so
    # it opens as before, bound to the account key alone.
    assert OPENER.open(blob, BODY) == data
    assert seal.open_with_key(blob, OPENER.content_key(blob, SUMMARY), BODY) == data
    assert OPENER.open_range(blob, 5, 20, BODY) == data[5:25]
    changed = bytearray(blob)
    changed[-1] ^= 1
    with pytest.raises(CryptoError):
        OPENER.open(bytes(changed), BODY)


def test_bound_boxes_and_the_boxes_written_before_them() -> None:
    key = OPENER.derive_key(b"digest packs")
    box = seal.seal_bound_box(key, b"pack", ACCOUNT, b"window 1", "digest pack")
    assert box[:4] == b"LLB2"
    assert seal.open_bound_box(key, box, ACCOUNT, b"window 1", "digest pack") == b"pack"
    for account, window, part in ((ACCOUNT, b"window 2", "digest pack"),
                                  ("other", b"window 1", "digest pack"),
                                  (ACCOUNT, b"window 1", "text pack")):
        with pytest.raises(CryptoError, match="failed authentication"):
            seal.open_bound_box(key, box, account, window, part)
    with pytest.raises(CryptoError, match="truncated"):
        seal.open_bound_box(key, box[:20], ACCOUNT, b"window 1", "digest pack")
    with pytest.raises(CryptoError, match="not a sealed digest pack"):
        seal.open_bound_box(key, bytes(len(box)), ACCOUNT, b"window 1", "digest pack")
    old = seal.seal_box(key, b"old pack", b"legacy binding")
    assert seal.open_bound_box(key, old, ACCOUNT, b"window 1", "digest pack",
                               b"legacy binding") == b"old pack"
    with pytest.raises(CryptoError):  # an old box is read only where one is expected
        seal.open_bound_box(key, old, ACCOUNT, b"window 1", "digest pack")
    with pytest.raises(CryptoError):
        seal.open_bound_box(key, old, ACCOUNT, b"window 1", "digest pack", b"other")


def test_the_associated_data_is_canonical() -> None:
    encodings = {seal.associated_data(2, account, obj, part)
                 for account, obj, part in (("ab", b"c", "body"), ("a", b"bc", "body"),
                                            ("ab", b"", "cbody"), ("ab", b"c", "summary"))}
    assert len(encodings) == 4
    assert seal.associated_data(2, "ab", b"c", "body") == seal.associated_data(
        2, "ab", b"c", "body")
