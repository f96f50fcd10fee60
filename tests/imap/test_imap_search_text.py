"""The header fields kept in a digest for SEARCH: folded, decoded, addresses in both
forms, and no field a crafted value could make up."""

from __future__ import annotations

from letterlock.imap import search_text

HEADER = (b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@Example.ORG>\r\n"
          b"Subject: Re: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
          b"Subject: second one\r\n"
          b"X-Odd: =?utf-8?q?a=1Esubject=1Fforged?=\r\n\r\n")


def test_fields_are_folded_decoded_and_found_by_name() -> None:
    data = search_text.encode(HEADER)
    subjects = search_text.field_values(data, "subject")
    assert subjects is not None and len(subjects) == 2
    assert search_text.needle("GRÜSSE") in subjects[0]  # case-folded: ß -> ss
    [sender] = search_text.field_values(data, "from") or []
    assert search_text.needle("jürgen müller <jm@example.org>") in sender
    assert search_text.field_values(data, "to") is None


def test_a_value_cannot_make_up_a_field() -> None:
    data = search_text.encode(HEADER)
    assert search_text.field_values(data, "x-odd") is not None
    values = search_text.field_values(data, "subject") or []
    assert not any(b"forged" in v for v in values)
    assert [v for v in search_text.all_values(data) if b"forged" in v] == [
        (search_text.field_values(data, "x-odd") or [b""])[0]]


def test_text_compares_values_not_field_names() -> None:
    data = search_text.encode(b"Subject: hello\r\n\r\n")
    assert not any(search_text.needle("subject") in v for v in search_text.all_values(data))
