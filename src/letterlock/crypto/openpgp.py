"""End-to-end mode: mail encrypted to the owner's own OpenPGP key (DESIGN.md).

An account in ``e2e`` custody gives the server its OpenPGP certificate (the public
part only). Every message delivered to it is turned into a PGP/MIME message
(RFC 3156) encrypted to that certificate before it is stored, so that only the
holder of the private key (the user's mail client) can read it; the server never
holds that key. The stored PGP/MIME message is then sealed like any other.

What stays readable to the server: the fields a mail client needs to list and
thread mail without the key (:data:`OUTER_FIELDS`: trace fields, From, To, Cc,
Date, Message-ID, ...). The Subject and everything else travel only inside the
encrypted part, which carries the original header as protected headers
(``protected-headers="v1"``, as Thunderbird and other OpenPGP clients read them);
the outer Subject is ``...``.

Uses Sequoia (``pysequoia``): v4 and v6 certificates.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

from pysequoia import Cert, encrypt

from letterlock.errors import InvalidInput
from letterlock.mime.headers import Field, split_fields
from letterlock.mime.structure import header_end

OUTER_FIELDS = frozenset({"return-path", "received", "from", "sender", "reply-to", "to",
                          "cc", "date", "message-id", "in-reply-to", "references"})
"""Header fields left readable outside the encryption."""
HIDDEN_SUBJECT = "..."


@dataclass(frozen=True)
class Certificate:
    armored: bytes
    """The public certificate, ASCII-armored (what is stored)."""
    fingerprint: str
    user_ids: tuple[str, ...]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _parse(data: bytes) -> Cert:
    try:
        return Cert.from_bytes(data)
    except Exception as exc:  # pysequoia raises RuntimeError with the parser's reason
        raise InvalidInput(f"not an OpenPGP certificate: {_first_line(exc)}") from None


def _described(cert: Cert) -> Certificate:
    return Certificate(str(cert).encode("ascii"), cert.fingerprint.upper(),
                       tuple(str(u) for u in cert.user_ids))


def describe(data: bytes) -> Certificate:
    """A stored certificate's fingerprint and user ids (no checks: see
    :func:`load_certificate`). Raises InvalidInput if it does not parse."""
    return _described(_parse(data))


def load_certificate(data: bytes) -> Certificate:
    """Check an uploaded certificate and return its public form. Raises InvalidInput
    for anything that is not a usable public certificate: garbage, a secret key (the
    server must never hold one), a revoked or expired certificate, or one without a
    key that can encrypt."""
    cert = _parse(data)
    with warnings.catch_warnings():
        # pysequoia prefers Tsk for secret keys; here we only need to know.
        warnings.simplefilter("ignore", DeprecationWarning)
        secret = cert.has_secret_keys
    if secret:
        raise InvalidInput("this is a secret key: give the public certificate only "
                           "(the server must never hold your private key)")
    if cert.is_revoked:
        raise InvalidInput("the certificate is revoked")
    try:
        encrypt(b"", recipients=[cert])
    except Exception as exc:
        raise InvalidInput(f"the certificate cannot be encrypted to: {_first_line(exc)}"
                           ) from None
    return _described(cert)


def _line(f: Field) -> bytes:
    """A header field as written, ending in a line break (the last field of a
    header without a body may lack one)."""
    return f.raw if f.raw.endswith(b"\n") else f.raw + b"\r\n"


def _protected_inner(fields: list[Field], body: bytes) -> bytes:
    """The original message as the encrypted MIME entity: its whole header, with
    ``protected-headers="v1"`` on its Content-Type (text/plain if it had none)."""
    out: list[bytes] = []
    typed = False
    for f in fields:
        if f.key == "content-type" and not typed:
            value = f.value.rstrip(b"; \t")
            out.append(b"Content-Type: " + value + b'; protected-headers="v1"\r\n')
            typed = True
        else:
            out.append(_line(f))
    if not typed:
        out.append(b'Content-Type: text/plain; charset=us-ascii; protected-headers="v1"\r\n')
    return b"".join(out) + b"\r\n" + body


def encrypt_message(raw: bytes, certificate: bytes) -> bytes:
    """``raw`` (an RFC 5322 message with CRLF line ends) as a PGP/MIME message
    encrypted to ``certificate``. Raises InvalidInput if the certificate no longer
    parses or cannot be encrypted to."""
    end = header_end(raw)
    fields = split_fields(raw[:end])
    try:
        cert = Cert.from_bytes(certificate)
        armored = encrypt(_protected_inner(fields, raw[end:]), recipients=[cert])
    except Exception as exc:
        raise InvalidInput(f"cannot encrypt to the account's OpenPGP certificate: "
                           f"{_first_line(exc)}") from None
    boundary = "ll-" + secrets.token_hex(12)
    outer = [_line(f) for f in fields if f.key in OUTER_FIELDS]
    encrypted = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not encrypted.endswith(b"\r\n"):
        encrypted += b"\r\n"
    return b"".join([
        *outer,
        f"Subject: {HIDDEN_SUBJECT}\r\n".encode(),
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        f' boundary="{boundary}"\r\n'.encode(),
        b"\r\n",
        b"This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n",
        f"--{boundary}\r\n".encode(),
        b"Content-Type: application/pgp-encrypted\r\n",
        b"Content-Description: PGP/MIME version identification\r\n",
        b"\r\n",
        b"Version: 1\r\n",
        b"\r\n",
        f"--{boundary}\r\n".encode(),
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n',
        b"Content-Description: OpenPGP encrypted message\r\n",
        b'Content-Disposition: inline; filename="encrypted.asc"\r\n',
        b"\r\n",
        encrypted,
        f"--{boundary}--\r\n".encode(),
    ])
