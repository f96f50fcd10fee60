"""The UTF8=ACCEPT renderings kept in digests are made only where they can differ
(a string the plain rendering sends as a literal), and are then exactly what
rendering every message both ways gives."""

from __future__ import annotations

import random

from letterlock.imap import encoding, views
from letterlock.mime import summary as summaries

PIECES = ["plain", "Grüße", "=?utf-8?q?K=C3=B6ln?=", "quote \" and \\ slash", "naïve",
          "x" * 1100, "tab\there", "日本語"]


def _message(rng: random.Random) -> bytes:
    subject = " ".join(rng.choice(PIECES) for _ in range(2))
    name = rng.choice(PIECES).replace("\"", "")
    sender = rng.choice(["Ann <ann@example.test>", "Jörg <j@example.test>",
                         "\"Zoë, Q.\" <zq@example.test>"])
    return (f"From: {sender}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
            "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
            f"--B\r\nContent-Type: application/pdf; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\nxx\r\n"
            "--B--\r\n").encode()


def _both_ways(summary: summaries.MessageSummary) -> tuple[bytes, bytes, bytes]:
    env = encoding.envelope(summaries.envelope_of(summary))
    tree = summaries.structure_of(summary)
    assert tree is not None
    plain = (encoding.encode(env), encoding.body_structure(tree, True),
             encoding.body_structure(tree, False))
    utf8 = (encoding.encode(env, utf8=True), encoding.body_structure(tree, True, utf8=True),
            encoding.body_structure(tree, False, utf8=True))
    return tuple(b"" if u == p else u for u, p in zip(utf8, plain, strict=True))  # type: ignore[return-value]


def test_utf8_views_equal_rendering_both_ways() -> None:
    rng = random.Random(11)
    differing = same = 0
    for _ in range(300):
        summary = summaries.summarize(_message(rng))
        made = views.make(summary)
        expected = _both_ways(summary)
        assert made[views.ENVELOPE8:views.BODY8 + 1] == expected
        if any(expected):
            differing += 1
        else:
            same += 1
    assert differing and same  # both kinds were exercised
