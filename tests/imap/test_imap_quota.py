"""IMAP QUOTA (RFC 9208): one root per account, its usage and limits as the server
counts them, and SETQUOTA refused (limits are the administrator's)."""

from __future__ import annotations

import asyncio
import imaplib

from imap_script import Imap

from letterlock.services.accounts.quotas import Quota, stored_size

MSG = b"Subject: q\r\n\r\n" + b"x" * 3000 + b"\r\n"


async def test_quota_root_and_usage(imap: Imap) -> None:
    c = await imap.session()
    caps = (await c.command("a0", "CAPABILITY"))[0]
    assert b" QUOTA " in caps and b"QUOTA=RES-STORAGE" in caps and b"QUOTA=RES-MESSAGE" in caps
    lines = await c.command("a1", "GETQUOTAROOT INBOX")
    assert lines == [b"* QUOTAROOT INBOX", b"a1 OK GETQUOTAROOT completed"]
    await imap.app.quotas.set_limits(imap.user, Quota(storage=10 << 20, messages=50))
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, "INBOX", MSG)
    imap.app.quotas.forget(ref)
    lines = await c.command("a2", "GETQUOTAROOT INBOX")
    used_kib = -(-stored_size(len(MSG)) // 1024)
    assert lines[0] == b'* QUOTAROOT INBOX "User quota"'
    assert lines[1] == b'* QUOTA "User quota" (STORAGE %d 10240 MESSAGE 1 50)' % used_kib
    quota_line = lines[1]
    lines = await c.command("a3", 'GETQUOTA "User quota"')
    assert lines == [quota_line, b"a3 OK GETQUOTA completed"]
    assert (await c.command("a4", 'GETQUOTA "other"'))[-1].startswith(b"a4 NO [NONEXISTENT]")
    assert (await c.command("a5", "GETQUOTAROOT Nowhere"))[-1].startswith(b"a5 NO [NONEXISTENT]")
    assert (await c.command("a6", 'SETQUOTA "User quota" (STORAGE 99)'))[-1] \
        .startswith(b"a6 NO [NOPERM]")
    assert (await c.command("a7", "SETQUOTA x (STORAGE"))[-1].startswith(b"a7 BAD")
    assert (await c.command("a8", "GETQUOTA"))[-1].startswith(b"a8 BAD")
    await imap.app.quotas.set_limits(imap.user, Quota(messages=50))
    lines = await c.command("a9", 'GETQUOTA "User quota"')
    assert lines[0] == b'* QUOTA "User quota" (MESSAGE 1 50)'


def _imaplib_quota(port: int, user: str, password: str) -> tuple[str, list[object]]:
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        m.login(user, password)
        typ, data = m.getquotaroot("INBOX")
        return typ, data
    finally:
        m.logout()


async def test_imaplib_reads_the_quota(imap: Imap) -> None:
    await imap.app.quotas.set_limits("@example.test", Quota(storage=1 << 30))
    typ, data = await asyncio.to_thread(_imaplib_quota, imap.port, imap.user, imap.password)
    assert typ == "OK"
    roots, quotas = data
    assert roots == [b'INBOX "User quota"'] and quotas == [b'"User quota" (STORAGE 0 1048576)']
