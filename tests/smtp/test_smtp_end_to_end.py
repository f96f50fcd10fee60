"""End-to-end mode through the real MX listener: mail for an account in e2e custody
is stored as PGP/MIME that only the owner's own OpenPGP key opens; the owner's
password is needed to switch it on or off; legal facts see the custody."""

from __future__ import annotations

import asyncio
import json
import smtplib
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from pysequoia import Tsk, decrypt

from letterlock.cli.main import cli
from letterlock.errors import AuthenticationFailed, InvalidInput
from letterlock.mime import structure
from letterlock.mime.headers import first_value, split_fields
from policy.harness import make_request
from smtp.conftest import ALICE, BOB, World
from support.env import FAST_KDF_ENV, PASSWORD

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    SECRET = Tsk.generate("Bob <bob@example.test>")
PUBLIC = str(SECRET.extract_certificate()).encode()


def message(marker: str) -> bytes:
    return (f"From: someone@remote.test\r\nTo: {BOB}\r\nSubject: {marker} subject\r\n"
            f"Message-ID: <{marker.lower()[:5]}@remote.test>\r\n\r\n{marker} body\r\n"
            ).encode()


def send(port: int, rcpts: list[str], msg: bytes) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("someone@remote.test", rcpts, msg)


def decrypted(stored: bytes) -> bytes:
    tree = structure.parse(stored)
    assert (tree.type, tree.subtype) == ("multipart", "encrypted")
    payload = tree.children[1]
    plain = decrypt(stored[payload.body_start:payload.end], decryptor=SECRET.decryptor()).bytes
    assert plain is not None
    return plain


async def test_mail_to_an_e2e_account_opens_only_with_the_owners_key(world: World) -> None:
    app = world.app
    ref = await app.accounts.set_end_to_end(BOB, PASSWORD, PUBLIC)
    assert ref.record.custody == "e2e"

    # One message to an e2e account and a sealed one: each copy is made for its owner.
    assert await asyncio.to_thread(send, world.mx_port, [BOB, ALICE],
                                   message("FIRST-MARKER")) == {}
    [stored] = await world.inbox(BOB)
    assert b"FIRST-MARKER" not in stored  # not even after unsealing, on the server
    assert first_value(split_fields(stored), "subject") == b"..."
    assert first_value(split_fields(stored), "message-id") == b"<first@remote.test>"
    inner = decrypted(stored)
    assert b"Subject: FIRST-MARKER subject" in inner
    assert inner.endswith(b"FIRST-MARKER body\r\n")
    assert b"Received: from" in stored  # the trace stays outside, readable
    [alices] = await world.inbox(ALICE)
    assert b"FIRST-MARKER body" in alices

    # Legal requests see who holds the key.
    matter = await app.legal.file(make_request(), "tester")
    assert matter.facts[BOB].key_custody == "e2e"

    # Switched off: new mail is sealed only (old mail stays encrypted).
    await app.accounts.set_end_to_end(BOB, PASSWORD, None)
    assert await asyncio.to_thread(send, world.mx_port, [BOB], message("SECOND-MARKER")) == {}
    first, second = await world.inbox(BOB)
    assert b"FIRST-MARKER" not in first and b"SECOND-MARKER body" in second


async def test_switching_needs_the_password_and_a_public_key(world: World) -> None:
    with pytest.raises(AuthenticationFailed):
        await world.app.accounts.set_end_to_end(BOB, "not the password", PUBLIC)
    with pytest.raises(InvalidInput, match="secret key"):
        await world.app.accounts.set_end_to_end(BOB, PASSWORD, str(SECRET).encode())
    ref = await world.app.accounts.resolve(BOB)
    assert (ref.record.custody, ref.record.openpgp_cert) == ("sealed", b"")


def test_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_KDF_ENV.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    assert runner.invoke(cli, [*home, "init"]).exit_code == 0
    assert runner.invoke(cli, [*home, "user", "add", BOB, "--region", "us-east",
                               "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    key = tmp_path / "bob.asc"
    key.write_bytes(PUBLIC)
    secret = tmp_path / "bob-secret.asc"
    secret.write_bytes(str(SECRET).encode())

    done = runner.invoke(cli, [*home, "user", "e2e", BOB, "--key", str(key),
                               "--password-stdin"], input=PASSWORD + "\n")
    assert done.exit_code == 0, done.output
    listed = json.loads(runner.invoke(cli, [*home, "user", "list", "--json"]).output)
    assert [(u["address"], u["custody"]) for u in listed] == [(BOB, "e2e")]
    fingerprint = SECRET.extract_certificate().fingerprint.upper()
    assert f"end-to-end, mail is encrypted to {fingerprint}" in done.output

    refused = runner.invoke(cli, [*home, "user", "e2e", BOB, "--key", str(secret),
                                  "--password-stdin"], input=PASSWORD + "\n")
    assert refused.exit_code == 2 and "secret key" in refused.output
    wrong = runner.invoke(cli, [*home, "user", "e2e", BOB, "--off", "--password-stdin"],
                          input="wrong password\n")
    assert wrong.exit_code != 0 and "authentication failed" in wrong.output
    both = runner.invoke(cli, [*home, "user", "e2e", BOB, "--off", "--key", str(key)])
    assert both.exit_code == 2 and "either --key FILE or --off" in both.output

    off = runner.invoke(cli, [*home, "user", "e2e", BOB, "--off", "--password-stdin"],
                        input=PASSWORD + "\n")
    assert off.exit_code == 0 and "sealed (end-to-end mode off)" in off.output
    listed = json.loads(runner.invoke(cli, [*home, "user", "list", "--json"]).output)
    assert [(u["address"], u["custody"]) for u in listed] == [(BOB, "sealed")]


async def test_a_key_that_stopped_working_keeps_the_mail(world: World) -> None:
    ref = await world.app.accounts.set_end_to_end(BOB, PASSWORD, PUBLIC)
    # As if the certificate had expired since: it no longer takes encryption.
    await world.app.cells.get(ref.region).store.set_custody(BOB, "e2e", b"not any more")
    assert await asyncio.to_thread(send, world.mx_port, [BOB], message("KEPT-MARKER")) == {}
    [stored] = await world.inbox(BOB)
    assert stored.startswith(b"X-Letterlock-E2E: not encrypted to your OpenPGP key: ")
    assert b"KEPT-MARKER body" in stored
