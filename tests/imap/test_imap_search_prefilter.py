"""SEARCH narrows header keys through the windows' kept views before testing messages
one by one: the answers must be exactly those of testing every message, whatever
the keys, the windows kept, new mail or expunges."""

from __future__ import annotations

import random

import pytest
from imap_script import Imap, ScriptClient, uid_search_answers

from letterlock.imap.commands import search as search_command

WORDS = ["alpha", "Beta", "gamma", "Grüße", "straße", "delta", "épée", "naïve", "zeta"]
SENDERS = ["Ann <ann@example.test>", "=?utf-8?q?J=C3=BCrgen?= <jm@example.org>",
           "bob@example.net", "\"Carol, Q.\" <carol@example.com>"]
QUERIES = [
    "SUBJECT alpha", "SUBJECT beta", 'SUBJECT "GRÜSSE"', "SUBJECT strasse", 'SUBJECT "épée"',
    'FROM "jürgen"', "FROM example.org", "FROM ann", "SUBJECT alpha FROM bob",
    "SUBJECT delta SEEN", "SUBJECT delta UNSEEN", "NOT SUBJECT alpha",
    "OR SUBJECT alpha SUBJECT zeta", "SUBJECT alpha SUBJECT beta",
    "HEADER X-Tag t7", "HEADER X-Tag \"\"", "TO nobody", "SUBJECT nothing-like-this",
    "SUBJECT a", "1:150 SUBJECT gamma", "SUBJECT zeta LARGER 10",
]


def _message(rng: random.Random, n: int) -> bytes:
    subject = " ".join(rng.sample(WORDS, 2))
    tag = f"X-Tag: t{n % 10}\r\n" if n % 3 else ""
    return (f"From: {rng.choice(SENDERS)}\r\nTo: alice@example.test\r\n"
            f"Subject: {subject} #{n}\r\n{tag}\r\nbody {n}\r\n").encode()


async def _answers(client: ScriptClient) -> list[bytes]:
    return await uid_search_answers(client, QUERIES)


@pytest.fixture
def unfiltered(monkeypatch: pytest.MonkeyPatch) -> object:
    """Turns the narrowing off (every message tested one by one) while set."""
    class Switch:
        def on(self) -> None:
            monkeypatch.setattr(search_command, "_required", lambda _key, _needle: [])

        def off(self) -> None:
            monkeypatch.undo()
    return Switch()


async def test_narrowed_search_answers_as_testing_every_message(imap: Imap,
                                                                unfiltered: object) -> None:
    rng = random.Random(5)
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append_many(
        ref, "INBOX", [(_message(rng, n), ("\\Seen",) if n % 4 == 0 else (), None)
                       for n in range(1, 301)])
    client = await imap.session("INBOX")
    cold = await _answers(client)          # windows made on the way
    await imap.app.mailboxes.digests.flush()
    warm = await _answers(client)          # windows hot in this process
    imap.app.mailboxes.digests.clear()
    packed = await _answers(client)        # windows opened from their packs
    unfiltered.on()  # type: ignore[attr-defined]
    truth = await _answers(client)
    unfiltered.off()  # type: ignore[attr-defined]
    assert cold == warm == packed == truth
    assert any(len(line.split()) > 10 for line in truth)  # the queries do find mail
    assert truth[QUERIES.index("SUBJECT nothing-like-this")] == b"* SEARCH"

    # Mail that arrives after the windows were made, and an expunge.
    await imap.app.mailboxes.append(ref, "INBOX", b"Subject: alpha late\r\n\r\nx\r\n")
    lines = await client.command("n", "NOOP")
    assert b"* 301 EXISTS" in lines or b"* 301 EXISTS" in b"\n".join(lines)
    lines = await client.command("d", "UID STORE 1:20 +FLAGS (\\Deleted)")
    lines = await client.command("e", "EXPUNGE")
    assert lines[-1].startswith(b"e OK")
    after = await _answers(client)
    unfiltered.on()  # type: ignore[attr-defined]
    assert after == await _answers(client)
    unfiltered.off()  # type: ignore[attr-defined]
    alpha = after[QUERIES.index("SUBJECT alpha")].split()[2:]
    assert b"301" in alpha and not any(int(u) <= 20 for u in alpha)
    await client.close()
