"""RFC 5256 threading on plain values: base subjects and their reply markers, the
REFERENCES algorithm (missing parents, dummies, subject merging, loops) and
ORDEREDSUBJECT, checked against threads worked out by hand (Dovecot 2.3.19's THREAD gave the same
answers for every mailbox here, REFERENCES and ORDEREDSUBJECT alike)."""

from __future__ import annotations

from letterlock.imap import threads
from letterlock.imap.subjects import extract


def _msg(seq: int, subject: str, msg_id: str | None = None, refs: str = "",
         in_reply_to: str = "", sent: float | None = None) -> threads.Message:
    base = extract(subject)
    return threads.Message(
        seq=seq, number=seq, sent=float(seq * 60 if sent is None else sent),
        subject=base.text, reply=base.reply,
        message_id=threads.message_ids(msg_id.encode())[0] if msg_id else None,
        references=threads.references_of(refs.encode() or None,
                                         in_reply_to.encode() or None))


# A small mailbox: a conversation, two replies to a parent that is not here, a
# subject-only pair, two unrelated messages with one subject, a References loop, a
# message that refers to itself and a forward without references.
CONVERSATION = [
    _msg(1, "Plans", "<a@x>"),
    _msg(2, "Re: Plans", "<b@x>", "<a@x>"),
    _msg(3, "RE: [team] Plans", "<c@x>", "<a@x> <b@x>"),
    _msg(4, "Re: Plans", "<d@x>", in_reply_to="<a@x> <zzz@x>"),
    _msg(5, "Re: Lost", "<e@x>", "<missing@x>"),
    _msg(6, "Re: Lost", "<f@x>", "<missing@x>"),
    _msg(7, "Lunch", "<g@x>"),
    _msg(8, "Re: Lunch", "<h@x>"),
    _msg(9, "Status", "<i@x>"),
    _msg(10, "Status", "<j@x>"),
    _msg(11, "Loop", "<k@x>", "<l@x>"),
    _msg(12, "Re: Loop", "<l@x>", "<k@x>"),
    _msg(13, "Self", "<m@x>", "<m@x>"),
    _msg(14, "Fwd: Plans", "<n@x>"),
]


def test_base_subject_marks_replies_and_forwards() -> None:
    assert extract("Re: [list] Fwd: Hello (fwd)") == extract("hello").__class__("HELLO", True)
    assert extract("[Fwd: Re: Topic]").text == "TOPIC"
    assert extract("[Fwd: Topic]").reply
    assert extract("Topic (fwd)").reply
    assert not extract("[list] Topic").reply
    assert extract("[list] Topic").text == "TOPIC"
    assert extract("  re :  spaced  out  ") == extract("x").__class__("SPACED OUT", True)
    assert extract("[only a blob]").text == "[ONLY A BLOB]"
    assert extract("Re[2]: counted").text == "COUNTED"
    assert extract("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=").text == "GRÜSSE"
    assert extract("").text == ""
    assert extract("Report: quarterly").text == "REPORT: QUARTERLY"


def test_references_threads_the_conversation() -> None:
    roots = threads.references(CONVERSATION)
    assert threads.render(roots) == (
        b"(1 (2 3)(4)(14))((5)(6))(7 8)((9)(10))(12 11)(13)")


def test_orderedsubject_groups_by_base_subject() -> None:
    roots = threads.ordered_subject(CONVERSATION)
    assert threads.render(roots) == (
        b"(1 (2)(3)(4)(14))(5 6)(7 8)(9 10)(11 12)(13)")


def test_missing_parent_with_one_child_is_promoted() -> None:
    msgs = [_msg(1, "One", "<a@x>", "<gone@x>"), _msg(2, "Two", "<b@x>")]
    assert threads.render(threads.references(msgs)) == b"(1)(2)"


def test_missing_grandparent_keeps_chain() -> None:
    # 3 refers to a parent (gone) and grandparent (root@x); 1 is root@x's other reply.
    msgs = [_msg(1, "A", "<r1@x>", "<root@x>"),
            _msg(2, "B", "<r2@x>", "<root@x> <gone@x>"),
            _msg(3, "C", "<r3@x>", "<root@x> <gone@x> <r2@x>")]
    # root@x is a dummy at the root with two children (1 and the dummy gone@x,
    # which is replaced by its child 2).
    assert threads.render(threads.references(msgs)) == b"((1)(2 3))"
    assert threads.render(threads.ordered_subject(msgs)) == b"(1)(2)(3)"


def test_later_message_corrects_a_guessed_parent() -> None:
    # 2's References guess that b@x's parent is a@x; b@x itself says it has none.
    msgs = [_msg(1, "Other", "<z@x>"),
            _msg(2, "C", "<c@x>", "<a@x> <b@x>"),
            _msg(3, "B", "<b@x>")]
    assert threads.render(threads.references(msgs)) == b"(1)(3 2)"


def test_a_guessed_parent_is_dropped_even_when_the_real_one_would_loop() -> None:
    # imaptest's "thread" script: 2 guesses that c@x hangs under a@x; 3 (c@x) says its
    # parent is b@x, which hangs under c@x. RFC 5256 1C: the guessed link is broken
    # first; the new one would loop and is not made, so c@x becomes a root with b@x.
    msgs = [_msg(1, "", "<a@b>", sent=3600),
            _msg(2, "", "<b@b>", "<a@b> <c@b>", sent=0),
            _msg(3, "", "<c@b>", "<b@b>", sent=1)]
    assert threads.render(threads.references(msgs)) == b"(3 2)(1)"


def test_duplicate_message_id_is_its_own_message() -> None:
    msgs = [_msg(1, "Same", "<dup@x>"), _msg(2, "Different", "<dup@x>"),
            _msg(3, "Re: Same", "<r@x>", "<dup@x>")]
    assert threads.render(threads.references(msgs)) == b"(1 3)(2)"
    assert threads.render(threads.ordered_subject(msgs)) == b"(1 3)(2)"


def test_dates_order_roots_and_siblings_ties_by_sequence() -> None:
    msgs = [_msg(1, "Late", "<a@x>", sent=500),
            _msg(2, "Re: Late", "<b@x>", "<a@x>", sent=900),
            _msg(3, "Re: Late", "<c@x>", "<a@x>", sent=700),
            _msg(4, "Early", "<d@x>", sent=100),
            _msg(5, "Tie", "<e@x>", sent=500)]
    assert threads.render(threads.references(msgs)) == b"(4)(1 (3)(2))(5)"
    assert threads.render(threads.ordered_subject(msgs)) == b"(4)(1 (3)(2))(5)"


def test_two_dummies_with_one_subject_are_merged() -> None:
    msgs = [_msg(1, "Re: Topic", "<a@x>", "<p1@x>"), _msg(2, "Re: Topic", "<b@x>", "<p1@x>"),
            _msg(3, "Re: Topic", "<c@x>", "<p2@x>"), _msg(4, "Re: Topic", "<d@x>", "<p2@x>")]
    assert threads.render(threads.references(msgs)) == b"((1)(2)(3)(4))"
    assert threads.render(threads.ordered_subject(msgs)) == b"(1 (2)(3)(4))"


def test_empty_subjects_are_not_merged() -> None:
    msgs = [_msg(1, "", "<a@x>"), _msg(2, "Re:", "<b@x>")]
    assert threads.render(threads.references(msgs)) == b"(1)(2)"
    assert threads.render(threads.ordered_subject(msgs)) == b"(1 2)"


def test_nothing_to_thread() -> None:
    assert threads.render(threads.references([])) == b""
    assert threads.render(threads.ordered_subject([])) == b""


def test_message_ids_skip_junk() -> None:
    assert threads.message_ids(b"<a@x> junk <no-at> (c) <b@y>\r\n <c@z>") == [
        b"a@x", b"b@y", b"c@z"]
    assert threads.references_of(b"nothing valid", b"<p@x> <q@x>") == (b"p@x",)
    assert threads.references_of(None, None) == ()
