"""The privacy center's Vacation tab (issue 16 point 5) through httpx against the real
application: the form writes a Sieve vacation rule (RFC 5230) that runs, in the form's
own script when none runs and inside the user's own running script (between marked
lines, after its requires) when one does; switching off takes it out again and leaves
the user's script as it was; bad values get a clear error naming the field and store
nothing; the form refuses a POST without its CSRF token."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from test_pages import BOB, PASSWORD, Site, csrf_of, login, site

from letterlock.errors import InvalidInput
from letterlock.services.mail.filters.vacation_form import (
    BEGIN,
    OWN_SCRIPT,
    REQUIRE,
    VacationSettings,
    insert_section,
    read_section,
    remove_section,
)

__all__ = ["site"]

USER_SCRIPT = (
    '# sorting, by hand\r\nrequire ["fileinto"];\r\nrequire "mailbox";\r\n'
    'if header :contains "subject" "invoice" { fileinto "Bills"; stop; }\r\n'
)


def words(html: str) -> str:
    return " ".join(html.split())


def form(csrf: str, **fields: str) -> dict[str, str]:
    base = {
        "csrf": csrf,
        "on": "on",
        "subject": "Away",
        "text": "Back on Monday.",
        "days": "7",
        "start": "",
        "end": "",
        "addresses": "",
    }
    return {**base, **fields}


async def post(c: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await c.get("/account/vacation")
    assert page.status_code == 200
    return await c.post("/account/vacation", data=form(csrf_of(page.text), **fields))


async def test_saving_writes_a_rule_that_runs_in_its_own_script(site: Site) -> None:
    app = site.app
    async with site.client() as c:
        await login(c)
        first = await c.get("/account/vacation")
        assert "Vacation replies are <strong>off</strong>" in words(first.text)
        saved = await post(
            c,
            subject='Out "of" office',
            text="Back on Monday.\nAsk Carol.",
            days="3",
            addresses="bob.smith@example.test",
        )
        assert saved.status_code == 200, saved.text
        assert 'id="vacation-done">Vacation replies are on.' in saved.text
        assert "run by your script <strong>privacy-center-vacation</strong>" in words(saved.text)
    bob = await app.accounts.authenticate(BOB, PASSWORD)
    scripts = {s.name: s.active for s in await app.filters.list(bob.ref)}
    assert scripts == {OWN_SCRIPT: True}
    text = await app.filters.get(bob, OWN_SCRIPT)
    settings = read_section(text)
    assert settings == VacationSettings(
        True,
        'Out "of" office',
        "Back on Monday.\nAsk Carol.",
        3,
        None,
        None,
        ("bob.smith@example.test",),
    )
    active = await app.filters.active_script(bob)
    assert active is not None and active[1].reads().sends_mail

    async with site.client() as c:
        await login(c)
        off = await post(c, on="off", text="Back on Monday.")
        assert 'id="vacation-done">Saved. Vacation replies are off.' in off.text
        # The form keeps what was written, for next time.
        assert "Back on Monday." in off.text
    assert await app.filters.active_script(bob) is None  # nothing is read for it now
    assert [s.name for s in await app.filters.list(bob.ref)] == [OWN_SCRIPT]


async def test_the_rule_goes_into_the_users_running_script_and_out_again(site: Site) -> None:
    app = site.app
    bob = await app.accounts.authenticate(BOB, PASSWORD)
    await app.filters.put(bob, "mine", USER_SCRIPT, via="test")
    await app.filters.activate(bob, "mine", via="test")
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    async with site.client() as c:
        await login(c)
        page = await c.get("/account/vacation")
        assert "Your own script <strong>mine</strong> is running" in words(page.text)
        saved = await post(
            c, start=tomorrow.isoformat(), end=(tomorrow + timedelta(days=9)).isoformat()
        )
        assert saved.status_code == 200, saved.text
        assert "run by your script <strong>mine</strong>" in words(saved.text)
    text = await app.filters.get(bob, "mine")
    lines = text.split("\r\n")
    # The require line first, the section after the script's own requires, the rest kept.
    assert lines[0] == REQUIRE
    assert lines[1:4] == ["# sorting, by hand", 'require ["fileinto"];', 'require "mailbox";']
    assert lines[4] == BEGIN
    assert read_section(text).start == tomorrow
    assert 'if header :contains "subject" "invoice"' in text.split("# END")[1]
    active = await app.filters.active_script(bob)
    assert active is not None and active[0] == "mine"
    async with site.client() as c:
        await login(c)
        await post(c, on="off")
    assert await app.filters.get(bob, "mine") == USER_SCRIPT  # exactly as it was


async def test_bad_values_are_refused_with_the_field_named(site: Site) -> None:
    app = site.app
    today = datetime.now(UTC).date()
    cases = [
        ({"days": "0"}, "days", "Days between replies must be from 1 to 60."),
        ({"days": "61"}, "days", "Days between replies must be from 1 to 60."),
        ({"days": "a week"}, "days", "Days between replies must be a whole number."),
        ({"text": "  "}, "text", "Write the message your correspondents get."),
        ({"start": "2030-02-30"}, "start", "2030-02-30 is not a date (YYYY-MM-DD)."),
        (
            {"start": "2030-03-02", "end": "2030-03-01"},
            "end",
            "The last day comes before the first day.",
        ),
        (
            {"end": (today - timedelta(days=1)).isoformat()},
            "end",
            "The last day has already passed.",
        ),
        (
            {"addresses": "me@example.test, not an address"},
            "addresses",
            "not is not a mail address.",
        ),
        ({"subject": "x" * 201}, "subject", "The subject may have at most 200 characters."),
        (
            {"text": "Away.\n# END vacation (privacy center)\nreject;"},
            "text",
            "A line of the message may not be one of the form's marker lines.",
        ),
    ]
    async with site.client() as c:
        await login(c)
        for fields, field, message in cases:
            refused = await post(c, **fields)
            assert refused.status_code == 422, fields
            assert f'id="vacation-error">{message}' in html.unescape(refused.text)
            assert f'id="{field}" name="{field}"' in refused.text
            # What was typed is shown again, marked invalid.
            assert 'aria-invalid="true"' in refused.text
    bob = await app.accounts.authenticate(BOB, PASSWORD)
    assert await app.filters.list(bob.ref) == []  # nothing stored


async def test_a_post_without_the_token_is_refused(site: Site) -> None:
    async with site.client() as c:
        await login(c)
        forged = await c.post("/account/vacation", data=form("forged"))
        assert forged.status_code == 403
    bob = await site.app.accounts.authenticate(BOB, PASSWORD)
    assert await site.app.filters.list(bob.ref) == []


def test_a_command_on_the_require_line_is_refused_not_mangled() -> None:
    settings = VacationSettings(True, "", "Away.", 7)
    with pytest.raises(InvalidInput, match=r"same line as its last require \(line 1\)"):
        insert_section('require "fileinto"; fileinto "X";\r\n', settings)
    for plain in ("keep;\n", "", 'require "fileinto";\n', "# only a comment"):
        inserted = insert_section(plain, settings)
        assert inserted.startswith(REQUIRE)
        assert read_section(inserted) == settings
        assert remove_section(inserted) == plain
