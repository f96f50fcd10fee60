"""The audit log's tree heads as C2SP checkpoints in signed notes, so that verifiers
and witnesses built for the Go ecosystem (``golang.org/x/mod/sumdb/note``, tlog
witnesses, tlog-tiles clients) can check this log as they check any other.

* A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank
  line, then one line per signature: ``U+2014 U+0020 name U+0020 base64(key ID ||
  signature)``. An Ed25519 note key's ID is the first four bytes of
  ``SHA-256(name || 0x0A || 0x01 || public key)``; its verifier key is written
  ``name+<key ID in hex>+base64(0x01 || public key)``.
* A checkpoint (c2sp.org/tlog-checkpoint) is the note text ``origin\\nsize\\n
  base64(root)\\n``. The log signs it with the same Ed25519 key as its JSON heads,
  under the key name ``origin``; the two forms say the same thing about the same tree.
* A witness cosignature (c2sp.org/tlog-cosignature, ``cosignature/v1``) is a note
  signature of key type 0x04 whose bytes are ``key ID || timestamp (8 bytes, big
  endian) || Ed25519 over "cosignature/v1\\ntime <timestamp>\\n" + checkpoint text``.

Only the standard library and ``cryptography``: like ``verify``, it can be copied out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014 "
MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, key or checkpoint is malformed, or a signature does not verify."""


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"not base64: {text[:40]!r}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"not canonical base64: {text[:40]!r}")
    return raw


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"a key name must be non-empty, without spaces or '+': {name!r}")


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    """The four-byte key ID of a signed-note key (name, type byte, key material)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public).digest()[:4]


def verifier_key(name: str, public: bytes, key_type: int = ED25519) -> str:
    """The text form of a verifier key: ``name+hexid+base64(type || key)``."""
    _check_name(name)
    material = base64.b64encode(bytes([key_type]) + public).decode("ascii")
    return f"{name}+{key_id(name, key_type, public).hex()}+{material}"


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key."""

    name: str
    key_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public)


def parse_verifier_key(text: str) -> Verifier:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key is name+keyid+key")
    name, hexid, material = parts
    _check_name(name)
    if len(hexid) != 8 or hexid.lower() != hexid:
        raise NoteError("a verifier key's ID is 8 lower-case hex digits")
    raw = _b64decode(material)
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("only Ed25519 (0x01) and cosignature/v1 (0x04) keys are supported")
    verifier = Verifier(name, raw[0], raw[1:])
    if verifier.key_id.hex() != hexid:
        raise NoteError("the verifier key's ID does not match its name and key")
    return verifier


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    data: bytes  # what follows the key ID: the signature (and a cosignature's time)

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.data).decode("ascii")
        return f"{DASH}{self.name} {blob}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text holds control characters")


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines (nothing verified yet)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("a note is UTF-8") from exc
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a signed note is text, a blank line and signature lines")
    text, block = note[: cut + 1], note[cut + 2:]
    _check_text(text)
    lines = block[:-1].split("\n")
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError("a signed note carries 1 to 100 signatures")
    signatures = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, sep, blob = line[len(DASH):].partition(" ")
        if not sep or " " in blob:
            raise NoteError(f"not a signature line: {line[:60]!r}")
        _check_name(name)
        raw = _b64decode(blob)
        if len(raw) < 5:
            raise NoteError("a signature is shorter than its key ID")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """``text`` signed with an Ed25519 note key named ``name``."""
    _check_text(text)
    _check_name(name)
    public = _raw_public(key)
    sig = NoteSignature(name, key_id(name, ED25519, public), key.sign(text.encode("utf-8")))
    return Note(text, (sig,)).render()


def open_note(note: str | bytes, verifier: Verifier) -> Note:
    """The note, if ``verifier`` signed it (raises NoteError otherwise). Signatures by
    other keys are kept, unchecked."""
    parsed = parse_note(note)
    mine = [s for s in parsed.signatures
            if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        raise NoteError(f"the note carries no signature by {verifier.name}")
    message = parsed.text.encode("utf-8")
    for sig in mine:
        if verifier.key_type == COSIGNATURE_V1:
            if len(sig.data) != 72:
                raise NoteError("a cosignature/v1 signature is 72 bytes after its key ID")
            (timestamp,) = struct.unpack(">Q", sig.data[:8])
            message = cosigned_message(parsed.text, timestamp)
            signature = sig.data[8:]
        else:
            signature = sig.data
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(signature, message)
        except InvalidSignature as exc:
            raise NoteError(f"the signature by {verifier.name} does not verify") from exc
    return parsed


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosignature_time(note: Note, verifier: Verifier) -> int:
    """The timestamp of ``verifier``'s cosignature on ``note`` (checked by open_note)."""
    for sig in note.signatures:
        if sig.name == verifier.name and sig.key_id == verifier.key_id:
            return int(struct.unpack(">Q", sig.data[:8])[0])
    raise NoteError(f"no cosignature by {verifier.name}")


# --- checkpoints (c2sp.org/tlog-checkpoint) ------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"),
                 *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint is origin, size and root hash, one a line")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise NoteError("a checkpoint's origin is empty")
    if not size_text.isdigit() or str(int(size_text)) != size_text:
        raise NoteError(f"a checkpoint's size is a decimal without leading zeros: {size_text!r}")
    root = _b64decode(root_text)
    if len(root) != 32:
        raise NoteError("a checkpoint's root hash is 32 bytes")
    if any(not e for e in extensions):
        raise NoteError("a checkpoint's extension lines are not empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def signed_checkpoint(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> str:
    """The checkpoint of the tree (size, root), as a note signed by the log key."""
    return sign_note(Checkpoint(origin, size, root).text(), origin, key)


def open_checkpoint(note: str | bytes, verifier: Verifier) -> tuple[Checkpoint, Note]:
    """A checkpoint signed by ``verifier``, whose origin must be its key name."""
    parsed = open_note(note, verifier)
    cp = parse_checkpoint(parsed.text)
    if cp.origin != verifier.name:
        raise NoteError(f"the checkpoint's origin {cp.origin!r} is not the key name "
                        f"{verifier.name!r}")
    return cp, parsed


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
