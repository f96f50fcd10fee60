"""Offline verifier for the letterlock audit log. Standalone on purpose.

This module imports only the Python standard library and ``cryptography`` so an
auditor can copy this one file and check what the operator publishes without trusting
(or installing) the rest of letterlock. It is also the reference for the formats:

* Leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || left || right)``,
  empty tree ``SHA-256("")`` (RFC 9162, section 2.1.1). A leaf is the UTF-8 text of one
  log record (canonical JSON, see ``letterlock.audit.records``).
* A signed tree head (JSON) signs the canonical JSON of its fields other than
  ``signature`` and ``public_key`` with the operator's Ed25519 log key; ``log_id`` is
  the SHA-256 of the raw public key. Canaries are signed the same way with their own
  ``format`` value, so a signature over one kind of document cannot pass for another.
* A salted commitment is ``SHA-256("letterlock-commitment-v1" || 0x00 || salt ||
  content)`` where ``content`` is the exact text revealed later.

Usage::

    python -m letterlock.audit.verify head HEAD.json [--public-key HEX|FILE]
    python -m letterlock.audit.verify inclusion PROOF.json [--public-key ...]
    python -m letterlock.audit.verify consistency PROOF.json [--public-key ...]
    python -m letterlock.audit.verify canary CANARY.json [--public-key ...]

Exit status 0 when everything checks out, 1 when something does not (the reason is
printed), 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HEAD_FORMAT = "letterlock-sth-v1"
INCLUSION_FORMAT = "letterlock-inclusion-v1"
CONSISTENCY_FORMAT = "letterlock-consistency-v1"
CANARY_FORMAT = "letterlock-canary-v1"
COMMITMENT_DOMAIN = b"letterlock-commitment-v1\x00"

EMPTY_ROOT = hashlib.sha256(b"").digest()


class VerificationError(Exception):
    """A proof, head or statement does not check out. The message says why."""


# --- hashing (RFC 9162, 2.1.1) -------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def commitment_hash(salt: bytes, content: bytes) -> bytes:
    return hashlib.sha256(COMMITMENT_DOMAIN + salt + content).digest()


def canonical_json(value: Any) -> bytes:
    """The one serialisation that is hashed or signed: sorted keys, no spaces, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


# --- proof checking (RFC 9162, 2.1.3.2 and 2.1.4.2) ----------------------------------


def root_from_inclusion(index: int, size: int, leaf_digest: bytes, path: Sequence[bytes]) -> bytes:
    """The root a correct inclusion path leads to, or VerificationError."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    acc = leaf_digest
    for sibling in path:
        if sn == 0:
            raise VerificationError("inclusion path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            # climb past the levels where this subtree is the right edge's only child
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion path is shorter than the tree is deep")
    return acc


def check_inclusion(
    index: int, size: int, leaf_digest: bytes, path: Sequence[bytes], root: bytes
) -> None:
    if root_from_inclusion(index, size, leaf_digest, path) != root:
        raise VerificationError(
            f"leaf {index} is not in the tree of size {size} with root {root.hex()}"
        )


def check_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, path: Sequence[bytes]
) -> None:
    """Raise unless the tree (size2, root2) extends the tree (size1, root1)."""
    if size1 > size2:
        raise VerificationError(f"first tree ({size1}) is larger than the second ({size2})")
    if size1 == size2:
        if path:
            raise VerificationError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise VerificationError(
                f"two different roots for the same size {size1}: the log forked"
            )
        return
    if size1 == 0:
        if path:
            raise VerificationError("an empty tree needs an empty consistency proof")
        if root1 != EMPTY_ROOT:
            raise VerificationError("first head claims size 0 with a non-empty root")
        return
    if not path:
        raise VerificationError("consistency proof is empty")
    nodes = list(path)
    if size1 & (size1 - 1) == 0:
        # the old tree is itself a complete subtree of the new one
        nodes.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than needed")
    if fr != root1:
        raise VerificationError(
            f"the tree of size {size2} does not contain the tree of size {size1} "
            "that was signed before: the log was rewritten"
        )
    if sr != root2:
        raise VerificationError(f"consistency proof does not lead to the root of size {size2}")


# --- signed documents ----------------------------------------------------------------


@dataclass(frozen=True)
class SignedHead:
    log_id: str
    public_key: bytes
    tree_size: int
    root_hash: bytes
    timestamp: str
    signature: bytes

    def signed_fields(self) -> dict[str, Any]:
        return {
            "format": HEAD_FORMAT,
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": self.timestamp,
        }

    def to_json(self) -> dict[str, Any]:
        doc = self.signed_fields()
        doc["public_key"] = self.public_key.hex()
        doc["signature"] = self.signature.hex()
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> SignedHead:
        if not isinstance(doc, dict) or doc.get("format") != HEAD_FORMAT:
            raise VerificationError(f"not a signed tree head ({HEAD_FORMAT})")
        try:
            size = doc["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise VerificationError("tree_size must be a non-negative integer")
            return cls(
                log_id=str(doc["log_id"]),
                public_key=_hex(doc["public_key"], 32, "public_key"),
                tree_size=size,
                root_hash=_hex(doc["root_hash"], 32, "root_hash"),
                timestamp=str(doc["timestamp"]),
                signature=_hex(doc["signature"], 64, "signature"),
            )
        except KeyError as exc:
            raise VerificationError(f"signed tree head lacks {exc.args[0]!r}") from exc


def log_id_for(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def check_signature(public_key: bytes, signed: dict[str, Any], signature: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, canonical_json(signed))
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError("signature does not verify") from exc


def check_head(head: SignedHead, pinned_key: bytes | None = None) -> None:
    """Signature, key id and (when given) the key the auditor already trusts."""
    if pinned_key is not None and head.public_key != pinned_key:
        raise VerificationError("head is signed by a different key than the pinned log key")
    if log_id_for(head.public_key) != head.log_id:
        raise VerificationError("log_id does not match the public key")
    try:
        check_signature(head.public_key, head.signed_fields(), head.signature)
    except VerificationError as exc:
        raise VerificationError(f"tree head of size {head.tree_size}: {exc}") from exc


def check_signed_document(doc: Any, fmt: str, pinned_key: bytes | None = None) -> None:
    """Check a signed statement (e.g. a canary): the fields other than ``signature``
    and ``public_key`` are signed."""
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise VerificationError(f"not a {fmt} document")
    key = _hex(doc.get("public_key"), 32, "public_key")
    sig = _hex(doc.get("signature"), 64, "signature")
    if pinned_key is not None and key != pinned_key:
        raise VerificationError("document is signed by a different key than the pinned log key")
    if doc.get("log_id") != log_id_for(key):
        raise VerificationError("log_id does not match the public key")
    signed = {k: v for k, v in doc.items() if k not in ("signature", "public_key")}
    check_signature(key, signed, sig)


# --- bundles as produced by `letterlock log proof/consistency --json` ----------------


@dataclass(frozen=True)
class InclusionResult:
    index: int
    leaf: dict[str, Any]
    head: SignedHead
    revealed_commitment: int | None = None
    committed_at: str | None = None


def check_inclusion_bundle(doc: Any, pinned_key: bytes | None = None) -> InclusionResult:
    if not isinstance(doc, dict) or doc.get("format") != INCLUSION_FORMAT:
        raise VerificationError(f"not an inclusion proof ({INCLUSION_FORMAT})")
    head = SignedHead.from_json(doc.get("head"))
    check_head(head, pinned_key)
    index, record = _check_leaf_in(doc, head)
    result = InclusionResult(index=index, leaf=record, head=head)
    if record.get("kind") != "reveal":
        return result
    # A reveal is only meaningful next to the commitment it opens, logged earlier.
    commit_doc = doc.get("commitment")
    if not isinstance(commit_doc, dict):
        raise VerificationError("a reveal needs the inclusion proof of its commitment")
    c_index, c_record = _check_leaf_in(commit_doc, head)
    if c_index != record.get("reveals"):
        raise VerificationError(
            f"reveal points at event {record.get('reveals')} but the proof is for {c_index}"
        )
    check_reveal(c_record, record)
    return InclusionResult(
        index=index,
        leaf=record,
        head=head,
        revealed_commitment=c_index,
        committed_at=str(c_record.get("logged_at")),
    )


def check_reveal(commitment: dict[str, Any], reveal: dict[str, Any]) -> None:
    """The reveal's content and salt open the commitment, and it came later."""
    if commitment.get("kind") != "commitment":
        raise VerificationError(f"event {commitment.get('i')} is not a commitment")
    if not isinstance(reveal.get("i"), int) or reveal["i"] <= commitment.get("i", -1):
        raise VerificationError("a reveal must come after the commitment it opens")
    salt = _hex(reveal.get("salt"), 32, "salt")
    content = reveal.get("content")
    if not isinstance(content, str):
        raise VerificationError("reveal has no content text")
    expected = _hex(commitment.get("commitment"), 32, "commitment")
    if commitment_hash(salt, content.encode("utf-8")) != expected:
        raise VerificationError(
            f"revealed content does not match the commitment of event {commitment.get('i')}"
        )


def check_consistency_bundle(
    doc: Any, pinned_key: bytes | None = None
) -> tuple[SignedHead, SignedHead]:
    if not isinstance(doc, dict) or doc.get("format") != CONSISTENCY_FORMAT:
        raise VerificationError(f"not a consistency proof ({CONSISTENCY_FORMAT})")
    first = SignedHead.from_json(doc.get("first"))
    second = SignedHead.from_json(doc.get("second"))
    check_head(first, pinned_key)
    check_head(second, pinned_key)
    if first.log_id != second.log_id:
        raise VerificationError("the two heads come from different logs")
    path = _hex_list(doc.get("path"), "path")
    check_consistency(first.tree_size, second.tree_size, first.root_hash, second.root_hash, path)
    return first, second


def _check_leaf_in(doc: dict[str, Any], head: SignedHead) -> tuple[int, dict[str, Any]]:
    index = doc.get("leaf_index")
    leaf = doc.get("leaf")
    if not isinstance(index, int) or not isinstance(leaf, str):
        raise VerificationError("inclusion proof needs leaf_index and leaf")
    path = _hex_list(doc.get("path"), "path")
    check_inclusion(index, head.tree_size, leaf_hash(leaf.encode("utf-8")), path, head.root_hash)
    try:
        record = json.loads(leaf)
    except ValueError as exc:
        raise VerificationError(f"leaf {index} is not JSON") from exc
    if not isinstance(record, dict) or record.get("i") != index:
        raise VerificationError(f"leaf {index} does not carry its own index")
    return index, record


def _hex(value: Any, length: int, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != length:
        raise VerificationError(f"{name} must be {length} bytes of hex")
    return raw


def _hex_list(value: Any, name: str) -> list[bytes]:
    if not isinstance(value, list):
        raise VerificationError(f"{name} must be a list of hashes")
    return [_hex(v, 32, name) for v in value]


# --- command line --------------------------------------------------------------------


def _load(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def _pinned(value: str | None) -> bytes | None:
    if value is None:
        return None
    candidate = Path(value)
    text = candidate.read_text(encoding="ascii").strip() if candidate.is_file() else value
    return _hex(text, 32, "--public-key")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m letterlock.audit.verify",
        description="Check letterlock audit log proofs, tree heads and canaries offline.",
    )
    parser.add_argument(
        "--public-key",
        help="the log key you trust (64 hex digits, or a file holding them); "
        "without it the key inside the document is used and only reported",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    for name, text in (
        ("head", "a signed tree head"),
        ("inclusion", "an inclusion proof (and a reveal with its commitment)"),
        ("consistency", "a consistency proof between two signed heads"),
        ("canary", "a signed warrant canary"),
    ):
        sub.add_parser(name, help=f"check {text}").add_argument("file", help="JSON file, or -")
    args = parser.parse_args(argv)
    try:
        doc = _load(args.file)
        pinned = _pinned(args.public_key)
    except (OSError, ValueError, VerificationError) as exc:
        print(f"error: cannot read input: {exc}", file=sys.stderr)
        return 2
    try:
        key_note = "pinned key" if pinned else "key named in the document (not pinned)"
        if args.what == "head":
            head = SignedHead.from_json(doc)
            check_head(head, pinned)
            print(
                f"OK head: size {head.tree_size} root {head.root_hash.hex()} "
                f"at {head.timestamp}, signed by log {head.log_id[:16]}… ({key_note})"
            )
        elif args.what == "inclusion":
            res = check_inclusion_bundle(doc, pinned)
            print(
                f"OK event {res.index} ({res.leaf.get('kind')}) is in the tree of size "
                f"{res.head.tree_size} signed at {res.head.timestamp} ({key_note})"
            )
            if res.revealed_commitment is not None:
                print(
                    f"OK the reveal opens the commitment logged as event "
                    f"{res.revealed_commitment} at {res.committed_at}"
                )
        elif args.what == "consistency":
            first, second = check_consistency_bundle(doc, pinned)
            print(
                f"OK the tree of size {second.tree_size} ({second.timestamp}) extends the "
                f"tree of size {first.tree_size} ({first.timestamp}) ({key_note})"
            )
        else:
            check_signed_document(doc, CANARY_FORMAT, pinned)
            print(f"OK canary for {doc.get('period')} issued {doc.get('issued_at')} ({key_note})")
            for line in doc.get("statements", []):
                print(f"  {line}")
    except VerificationError as exc:
        print(f"FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
