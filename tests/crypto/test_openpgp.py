"""End-to-end mode's PGP/MIME: certificates are checked, and a message encrypted to
one opens only with its secret key, with the original header protected inside."""

from __future__ import annotations

import re
import warnings

import pytest
from pysequoia import Tsk, decrypt

from letterlock.crypto import openpgp
from letterlock.errors import InvalidInput
from letterlock.mime import structure
from letterlock.mime.headers import first_value, split_fields

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    SECRET = Tsk.generate("Bob <bob@example.test>")
PUBLIC = str(SECRET.extract_certificate()).encode()

MESSAGE = (b"Return-Path: <alice@example.org>\r\n"
           b"Received: from mx.example.org ([192.0.2.1])\r\n\tby mx.example.test; "
           b"Sat, 28 Nov 2026 05:00:00 +0000\r\n"
           b"From: Alice <alice@example.org>\r\nTo: bob@example.test\r\n"
           b"Subject: SUBJECT-MARKER quarterly figures\r\n"
           b"Date: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n"
           b"X-Mailer: MAILER-MARKER\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain;\r\n charset=utf-8\r\n\r\n"
           b"BODY-MARKER: the numbers are in.\r\n")


def opened(stored: bytes) -> tuple[structure.Part, bytes]:
    """The stored message's part tree, and its encrypted part decrypted."""
    tree = structure.parse(stored)
    [_, payload] = tree.children
    armored = stored[payload.body_start:payload.end]
    plain = decrypt(armored, decryptor=SECRET.decryptor()).bytes
    assert plain is not None
    return tree, plain


def test_a_public_certificate_is_taken_in_its_public_form() -> None:
    cert = openpgp.load_certificate(PUBLIC)
    assert cert.armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", cert.fingerprint)
    assert cert.user_ids == ("Bob <bob@example.test>",)
    assert openpgp.load_certificate(cert.armored) == cert


@pytest.mark.parametrize("data, reason", [
    (b"", "not an OpenPGP certificate"),
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n", "not an OpenPGP certificate"),
    (str(SECRET).encode(), "secret key"),
])
def test_unusable_certificates_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as info:
        openpgp.load_certificate(data)
    assert "\n" not in str(info.value)  # one line, no Rust backtrace


def test_encrypted_message_is_pgp_mime_with_protected_headers() -> None:
    stored = openpgp.encrypt_message(MESSAGE, PUBLIC)
    for marker in (b"SUBJECT-MARKER", b"MAILER-MARKER", b"BODY-MARKER"):
        assert marker not in stored
    tree, inner = opened(stored)
    assert (tree.type, tree.subtype) == ("multipart", "encrypted")
    assert ("protocol", "application/pgp-encrypted") in tree.params
    first, second = tree.children
    assert (first.type, first.subtype) == ("application", "pgp-encrypted")
    assert stored[first.body_start:first.end].strip() == b"Version: 1"
    assert (second.type, second.subtype) == ("application", "octet-stream")

    outer = split_fields(stored[:tree.body_start])
    assert first_value(outer, "subject") == b"..."
    for name in ("return-path", "received", "from", "to", "date", "message-id"):
        assert first_value(outer, name) == first_value(split_fields(MESSAGE), name)
    assert first_value(outer, "x-mailer") is None

    # Inside: the original header and body, marked as protected headers.
    inner_fields = split_fields(inner)
    assert first_value(inner_fields, "subject") == b"SUBJECT-MARKER quarterly figures"
    assert first_value(inner_fields, "x-mailer") == b"MAILER-MARKER"
    assert first_value(inner_fields, "content-type") == \
        b'text/plain; charset=utf-8; protected-headers="v1"'
    assert inner.endswith(b"\r\n\r\nBODY-MARKER: the numbers are in.\r\n")


def test_a_message_without_mime_header_gets_text_plain_inside() -> None:
    stored = openpgp.encrypt_message(b"Subject: plain\nFrom: a@example.org\n\nhello\n",
                                     PUBLIC)
    _, inner = opened(stored)
    fields = split_fields(inner)
    assert first_value(fields, "content-type") == \
        b'text/plain; charset=us-ascii; protected-headers="v1"'
    assert first_value(fields, "subject") == b"plain"
    assert inner.endswith(b"hello\n")


def test_a_broken_stored_certificate_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="cannot encrypt"):
        openpgp.encrypt_message(MESSAGE, b"not a certificate")
