"""Subscriptions are names, not mailboxes (RFC 9051 6.3.7-6.3.9, RFC 5258): SUBSCRIBE
works for names that do not exist, and DELETE / RENAME never drop a subscription."""

from __future__ import annotations

from imap_script import Imap


def untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


async def test_subscribe_to_a_name_that_does_not_exist(imap: Imap) -> None:
    c = await imap.session()
    assert (await c.command("a1", "SUBSCRIBE Future/Plans"))[-1].startswith(b"a1 OK")
    lines = await c.command("a2", 'LIST (SUBSCRIBED) "" "Future/*"')
    assert untagged(lines) == [b'* LIST (\\NonExistent \\Subscribed) "/" Future/Plans']
    # Plain LIST shows only mailboxes; LSUB shows the name as not selectable.
    assert untagged(await c.command("a3", 'LIST "" "Future*"')) == []
    assert untagged(await c.command("a4", 'LSUB "" "Future/*"')) == [
        b'* LSUB (\\Noselect) "/" Future/Plans']
    # The unsubscribed parent appears in LSUB % (RFC 3501 6.3.9) and, with
    # RECURSIVEMATCH, with CHILDINFO.
    assert b'* LSUB (\\Noselect) "/" Future' in untagged(await c.command("a5", 'LSUB "" "%"'))
    lines = await c.command("a6", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Fut%"')
    assert untagged(lines) == [b'* LIST (\\NonExistent) "/" Future ("CHILDINFO" ("SUBSCRIBED"))']
    # Creating the mailbox later does not subscribe it anew, nor drop the subscription.
    await c.command("a7", "CREATE Future/Plans")
    lines = await c.command("a8", 'LIST "" "Future/*" RETURN (SUBSCRIBED)')
    assert untagged(lines) == [b'* LIST (\\Subscribed) "/" Future/Plans']
    await c.command("a9", "UNSUBSCRIBE Future/Plans")
    assert all(b"Future" not in x for x in untagged(await c.command("a10", 'LSUB "" "*"')))
    await c.close()


async def test_delete_and_rename_keep_subscriptions(imap: Imap) -> None:
    c = await imap.session()
    for i, cmd in enumerate(["CREATE Box", "CREATE Box/Sub", "CREATE Other",
                             "SUBSCRIBE Box", "SUBSCRIBE Box/Sub", "SUBSCRIBE Other"]):
        assert (await c.command(f"p{i}", cmd))[-1].startswith(f"p{i} OK".encode())
    assert (await c.command("d1", "DELETE Other"))[-1].startswith(b"d1 OK")
    lines = await c.command("d2", 'LIST (SUBSCRIBED) "" "Other"')
    assert untagged(lines) == [b'* LIST (\\NonExistent \\Subscribed) "/" Other']
    assert (await c.command("r1", "RENAME Box Crate"))[-1].startswith(b"r1 OK")
    lines = untagged(await c.command("r2", 'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)'))
    assert b'* LIST (\\HasChildren \\Subscribed) "/" Crate' in lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Crate/Sub' in lines
    # The old names stay subscribed: the server never removes a name by itself.
    assert b'* LIST (\\NonExistent \\HasChildren \\Subscribed) "/" Box' not in lines
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Box' in lines
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Box/Sub' in lines
    # Other sessions see the same list.
    d = await imap.session()
    other = untagged(await d.command("o1", 'LSUB "" "*"'))
    assert b'* LSUB () "/" Crate/Sub' in other and b'* LSUB (\\Noselect) "/" Other' in other
    await d.close()
    await c.close()


async def test_subscribe_refuses_impossible_names(imap: Imap) -> None:
    c = await imap.session()
    assert (await c.command("a1", 'SUBSCRIBE "a//b"'))[-1].startswith(b"a1 NO")
    await c.close()


async def test_delete_of_a_mailbox_with_children_leaves_a_noselect_parent(imap: Imap) -> None:
    c = await imap.session()
    await c.command("p1", "CREATE Top/Child")
    await c.command("p2", "APPEND Top {10+}\r\nSubject: x")
    assert (await c.command("d1", "DELETE Top"))[-1].startswith(b"d1 OK")
    lines = untagged(await c.command("l1", 'LIST "" "Top*"'))
    assert lines == [b'* LIST (\\Noselect \\HasChildren) "/" Top',
                     b'* LIST (\\HasNoChildren) "/" Top/Child']
    assert (await c.command("s1", "SELECT Top"))[-1].startswith(b"s1 NO")
    # Deleting the bare parent name is an error (RFC 9051 6.3.5); the child is intact.
    assert (await c.command("d2", "DELETE Top"))[-1].startswith(b"d2 NO [HASCHILDREN]")
    assert (await c.command("s2", "SELECT Top/Child"))[-1].startswith(b"s2 OK")
    # Creating the name again makes it a mailbox, empty.
    await c.command("u", "UNSELECT")
    assert (await c.command("c1", "CREATE Top"))[-1].startswith(b"c1 OK")
    lines = untagged(await c.command("l2", 'LIST "" "Top"'))
    assert lines == [b'* LIST (\\HasChildren) "/" Top']
    assert b"* 0 EXISTS" in await c.command("s3", "SELECT Top")
    await c.close()
