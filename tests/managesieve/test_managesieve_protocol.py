"""ManageSieve (RFC 5804) over raw sockets: greeting capabilities, STARTTLS, SASL
PLAIN (with and without an initial response), every script command with its response
codes, and bad input answered with NO or BYE and a reason (never a dropped connection
or a traceback)."""

from __future__ import annotations

import asyncio
import base64

from letterlock.sieve import EXTENSIONS
from managesieve.conftest import ALICE, PASSWORD, Client, Sieve

SCRIPT = b'require ["fileinto"];\r\nif header :contains "subject" "zebrafish" {\r\n' \
         b'  fileinto "Lists";\r\n}\r\n'


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def session(port: int) -> list[list[bytes]]:
    c = Client(port)
    out = [c.greeting]
    out.append(c.starttls())
    out.append(c.login())
    out.append(c.command(b'HAVESPACE "rules" 100'))
    out.append(c.command(b'PUTSCRIPT "rules" ' + literal(SCRIPT)))
    out.append(c.command(b'PUTSCRIPT "other" {9}\r\nkeep;\r\n   '))  # {n} accepted too
    out.append(c.command(b"LISTSCRIPTS"))
    out.append(c.command(b'SETACTIVE "rules"'))
    out.append(c.command(b"LISTSCRIPTS"))
    out.append(c.command(b'GETSCRIPT "rules"'))
    out.append(c.command(b'DELETESCRIPT "rules"'))
    out.append(c.command(b'RENAMESCRIPT "other" "rules"'))
    out.append(c.command(b'RENAMESCRIPT "other" "second"'))
    out.append(c.command(b'GETSCRIPT "nope"'))
    out.append(c.command(b'SETACTIVE ""'))
    out.append(c.command(b'DELETESCRIPT "rules"'))
    out.append(c.command(b'NOOP "tag1"'))
    out.append(c.command(b"LOGOUT"))
    c.close()
    return out


async def test_a_whole_session(sieve_server: Sieve) -> None:
    out = await asyncio.to_thread(session, sieve_server.port)
    greeting, after_tls, login, space, put, put2, listed, active, listed2, got, \
        del_active, rename_taken, rename, get_missing, deactivate, delete, noop, bye = out
    assert b'"IMPLEMENTATION" "letterlock"' in greeting
    assert b'"STARTTLS"' in greeting and b'"VERSION" "1.0"' in greeting
    sieve_line = next(line for line in greeting if line.startswith(b'"SIEVE"'))
    assert set(sieve_line.split(b'"')[3].decode().split()) == set(EXTENSIONS)
    assert b'"STARTTLS"' not in after_tls and after_tls[-1].startswith(b"OK")
    assert b'"SASL" "PLAIN"' in after_tls
    assert login[-1].startswith(b"OK"), login
    assert space[-1] == b"OK" and put[-1].startswith(b"OK") and put2[-1].startswith(b"OK")
    assert listed[:-1] == [b'"other"', b'"rules"']
    assert active[-1] == b"OK" and listed2[:-1] == [b'"other"', b'"rules" ACTIVE']
    assert got[0] == b"{%d}" % len(SCRIPT) and got[1] == SCRIPT and got[-1] == b"OK"
    assert del_active[-1].startswith(b"NO (ACTIVE)")
    assert rename_taken[-1].startswith(b"NO (ALREADYEXISTS)")
    assert rename[-1] == b"OK"
    assert get_missing[-1].startswith(b"NO (NONEXISTENT)")
    assert deactivate[-1] == b"OK" and delete[-1] == b"OK"
    assert noop[-1].startswith(b'OK (TAG "tag1")')
    assert bye[-1].startswith(b"OK")


def errors(port: int) -> list[list[bytes]]:
    c = Client(port)
    out = [c.command(b'LISTSCRIPTS')]  # before login
    c.starttls()
    c.login()
    out.append(c.command(b'PUTSCRIPT "bad" ' + literal(b'if true {\r\n  frobnicate;\r\n}\r\n')))
    out.append(c.command(b'CHECKSCRIPT ' + literal(b'keep;\r\n')))
    out.append(c.command(b'CHECKSCRIPT ' + literal(b'keep\r\n')))
    out.append(c.command(b'PUTSCRIPT "huge" ' + literal(b"#" * 5000 + b"\r\nkeep;\r\n")))
    out.append(c.command(b'HAVESPACE "huge" 5000'))
    out.append(c.command(b'HAVESPACE "x" 3000'))
    out.append(c.command(b'PUTSCRIPT "a/b" ' + literal(b"keep;\r\n")))
    out.append(c.command(b'FROBNICATE'))
    out.append(c.command(b'GETSCRIPT'))
    out.append(c.command(b'GETSCRIPT "unterminated'))
    out.append(c.command(b'NOOP'))
    out.append(c.command(b'PUTSCRIPT "x" {99999999+}'))
    c.close()
    return out


async def test_errors_get_reasons(sieve_server: Sieve) -> None:
    (early, bad, check_ok, check_bad, huge, space_big, space_ok, bad_name, unknown,
     no_args, unterminated, still_alive, too_big) = await asyncio.to_thread(
        errors, sieve_server.port)
    assert early[-1].startswith(b"NO") and b"AUTHENTICATE" in early[-1]
    assert bad[-1].startswith(b'NO "line 2:'), bad
    assert check_ok[-1] == b"OK"
    assert check_bad[-1].startswith(b'NO "line'), check_bad
    assert huge[-1].startswith(b"NO (QUOTA/MAXSIZE)")
    assert space_big[-1].startswith(b"NO (QUOTA/MAXSIZE)")
    assert space_ok[-1] == b"OK"
    assert bad_name[-1].startswith(b"NO") and b"name" in bad_name[-1]
    assert unknown[-1].startswith(b"NO") and b"Unknown" in unknown[-1]
    assert no_args[-1].startswith(b"NO") and b"GETSCRIPT takes" in no_args[-1]
    assert unterminated[-1].startswith(b"NO") and b"unterminated" in unterminated[-1]
    assert still_alive[-1].startswith(b"OK")
    assert too_big[-1].startswith(b"BYE (QUOTA/MAXSIZE)")


def quota(port: int) -> list[list[bytes]]:
    c = Client(port)
    c.starttls()
    c.login()
    out = [c.command(b'PUTSCRIPT "one" ' + literal(b"#" * 3500 + b"\r\nkeep;\r\n")),
           c.command(b'HAVESPACE "two" 3000'),
           c.command(b'PUTSCRIPT "two" ' + literal(b"#" * 3000 + b"\r\nkeep;\r\n")),
           c.command(b'HAVESPACE "one" 3600')]  # replacing "one" itself fits
    c.close()
    return out


async def test_scripts_share_an_account_limit(sieve_server: Sieve) -> None:
    one, space, two, replace = await asyncio.to_thread(quota, sieve_server.port)
    assert one[-1].startswith(b"OK")
    assert space[-1].startswith(b"NO (QUOTA)") and two[-1].startswith(b"NO (QUOTA)")
    assert replace[-1] == b"OK"


def sasl_with_challenge(port: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    c = Client(port)
    c.starttls()
    c.send(b'AUTHENTICATE "PLAIN"\r\n')
    challenge = bytes(c.file.readline())
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    ok = c.command(b'"' + token + b'"')
    unauth = c.command(b"UNAUTHENTICATE")
    again = c.command(b"LISTSCRIPTS")
    c.close()
    return [challenge], ok, unauth + again


async def test_sasl_challenge_and_unauthenticate(sieve_server: Sieve) -> None:
    challenge, ok, after = await asyncio.to_thread(sasl_with_challenge, sieve_server.port)
    assert challenge == [b'""\r\n']
    assert ok[-1].startswith(b"OK")
    assert after[0] == b"OK" and after[-1].startswith(b"NO")


def wrong_password(port: int) -> list[bytes]:
    c = Client(port)
    c.starttls()
    out = c.login(password="not the password at all")
    c.close()
    return out


async def test_wrong_password(sieve_server: Sieve) -> None:
    out = await asyncio.to_thread(wrong_password, sieve_server.port)
    assert out[-1].startswith(b"NO") and b"failed" in out[-1]


def long_line(port: int) -> list[bytes]:
    c = Client(port)
    out = c.command(b"NOOP " + b"x" * 20000)
    c.close()
    return out


async def test_an_endless_line_ends_with_bye(sieve_server: Sieve) -> None:
    out = await asyncio.to_thread(long_line, sieve_server.port)
    assert out[-1] == b'BYE "Line too long"'


def starttls_after_login(port: int) -> list[bytes]:
    c = Client(port)
    assert c.login()[-1].startswith(b"OK")  # loopback: allowed in the clear
    out = c.command(b"STARTTLS")
    c.close()
    return out


async def test_no_starttls_after_login(sieve_server: Sieve) -> None:
    out = await asyncio.to_thread(starttls_after_login, sieve_server.port)
    assert out[-1].startswith(b"NO") and b"before logging in" in out[-1]
