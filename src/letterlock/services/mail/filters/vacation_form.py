"""The privacy center's vacation form as a Sieve rule (RFC 5230), living beside the
scripts a user edits over ManageSieve.

Only one script runs per account (RFC 5804), so the form cannot simply add a second
one. It owns a marked section instead::

    require ["date", "relational", "vacation"]; # vacation (privacy center)
    ...the script's own require commands...
    # BEGIN vacation (privacy center)
    # ...
    if allof (currentdate ..., currentdate ...) { vacation :days 7 ... "text"; }
    # END vacation (privacy center)
    ...the rest of the script, untouched...

- With no script running (or its own running), the form keeps the section in its own
  script, ``OWN_SCRIPT``, activated while vacation is on and deactivated when off (so
  nothing is read for it then).
- With the user's own script running, the section goes into that script, after its
  require commands (so the reply goes out whatever the rest of the script does with
  the message), and is taken out again when vacation is switched off. The form's own
  script still keeps the settings, inactive, so the form shows them next time.

The section is read back from the script itself (not from a copy of the form), so the
page always shows what runs. Everything here is text in, text out except
:class:`VacationForm`, which stores through :class:`FilterService` like ManageSieve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from letterlock import sieve
from letterlock.errors import InvalidInput, LetterlockError
from letterlock.services.accounts.accounts import Session
from letterlock.services.accounts.addresses import normalise_address
from letterlock.services.mail.filters.scripts import FilterService
from letterlock.sieve.lexer import tokenize
from letterlock.sieve.vacation import DAY, MAX_PERIOD, MIN_PERIOD

OWN_SCRIPT = "privacy-center-vacation"
MARK = "vacation (privacy center)"
BEGIN = f"# BEGIN {MARK}"
END = f"# END {MARK}"
REQUIRE = f'require ["date", "relational", "vacation"]; # {MARK}'
MIN_DAYS = MIN_PERIOD // DAY
MAX_DAYS = MAX_PERIOD // DAY
MAX_SUBJECT = 200
MAX_TEXT = 8000
MAX_ADDRESSES = 20


class VacationInvalid(InvalidInput):
    """A form value out of bounds; ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class VacationSettings:
    on: bool = False
    subject: str = ""
    """Empty: "Auto: " and the subject of the message answered."""
    text: str = ""
    days: int = 7
    start: date | None = None
    """First day replies go out (UTC); None: from now."""
    end: date | None = None
    """Last day replies go out (UTC); None: until switched off."""
    addresses: tuple[str, ...] = ()
    """Further addresses that count as the user's (RFC 5230 4.5 :addresses)."""


@dataclass(frozen=True)
class VacationState:
    settings: VacationSettings
    running: bool
    """A vacation section is in the running script."""
    running_in: str | None
    """The running script's name (``OWN_SCRIPT`` or the user's own), or None."""
    other_script: str | None
    """The user's own running script, when there is one."""
    own_vacation: bool
    """The user's running script has a vacation rule of its own (outside the section)."""
    unreadable: str | None = None
    """Why the marked section could not be read (edited in a Sieve client)."""


def check_settings(
    *,
    on: bool,
    subject: str,
    text: str,
    days: str,
    start: str,
    end: str,
    addresses: str,
    today: date,
) -> VacationSettings:
    """The form's fields as settings; raises VacationInvalid naming the field."""
    subject = subject.strip()
    if "\n" in subject or "\r" in subject:
        raise VacationInvalid("subject", "The subject must be one line.")
    if len(subject) > MAX_SUBJECT:
        raise VacationInvalid("subject", f"The subject may have at most {MAX_SUBJECT} characters.")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if on and not text.strip():
        raise VacationInvalid("text", "Write the message your correspondents get.")
    if len(text) > MAX_TEXT:
        raise VacationInvalid("text", f"The message may have at most {MAX_TEXT} characters.")
    if any(line.strip() in (BEGIN, END, REQUIRE) for line in text.split("\n")):
        # The section is found by these lines; one inside the message would cut it.
        raise VacationInvalid(
            "text", "A line of the message may not be one of the form's marker lines."
        )
    try:
        period = int(days.strip())
    except ValueError:
        raise VacationInvalid("days", "Days between replies must be a whole number.") from None
    if not MIN_DAYS <= period <= MAX_DAYS:
        raise VacationInvalid(
            "days", f"Days between replies must be from {MIN_DAYS} to {MAX_DAYS}."
        )
    first, last = _day(start, "start"), _day(end, "end")
    if first is not None and last is not None and last < first:
        raise VacationInvalid("end", "The last day comes before the first day.")
    if on and last is not None and last < today:
        raise VacationInvalid("end", "The last day has already passed.")
    mine = []
    for item in re.split(r"[\s,;]+", addresses.strip()):
        if not item:
            continue
        try:
            mine.append(normalise_address(item))
        except InvalidInput:
            raise VacationInvalid("addresses", f"{item[:80]} is not a mail address.") from None
    if len(set(mine)) > MAX_ADDRESSES:
        raise VacationInvalid("addresses", f"At most {MAX_ADDRESSES} addresses.")
    return VacationSettings(on, subject, text, period, first, last, tuple(dict.fromkeys(mine)))


def _day(text: str, field: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise VacationInvalid(field, f"{text[:20]} is not a date (YYYY-MM-DD).") from None


# -- the section as Sieve text --------------------------------------------------------


def quoted(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2): only \\ and " are escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def section(settings: VacationSettings) -> list[str]:
    """The marked lines for ``settings`` (without the require line)."""
    tests = []
    if settings.start is not None:
        tests.append(f'currentdate :value "ge" "date" "{settings.start.isoformat()}"')
    if settings.end is not None:
        tests.append(f'currentdate :value "le" "date" "{settings.end.isoformat()}"')
    indent = "    " if tests else ""
    action = [f"{indent}vacation :days {settings.days}"]
    if settings.subject:
        action.append(f"{indent}    :subject {quoted(settings.subject)}")
    if settings.addresses:
        listed = ", ".join(quoted(a) for a in settings.addresses)
        action.append(f"{indent}    :addresses [{listed}]")
    # The message's own line ends become the script's (a quoted string may span lines).
    action += f"{indent}    {quoted(settings.text)};".split("\n")
    lines = [
        BEGIN,
        "# Written by the Vacation page of the privacy center: saving there",
        "# replaces everything down to the END line. Days are UTC dates.",
    ]
    if not tests:
        lines += action
    elif len(tests) == 1:
        lines += [f"if {tests[0]} {{", *action, "}"]
    else:
        lines += [f"if allof ({tests[0]},", f"          {tests[1]}) {{", *action, "}"]
    return [*lines, END]


def own_script(settings: VacationSettings) -> str:
    """The form's own script: the require line and the section."""
    return "\r\n".join([REQUIRE, *section(settings)]) + "\r\n"


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def _marked(lines: list[str]) -> tuple[int, int] | None:
    """The indexes of the BEGIN and END lines, or None."""
    begin = next((i for i, line in enumerate(lines) if line.strip() == BEGIN), None)
    if begin is None:
        return None
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].strip() == END), None)
    return None if end is None else (begin, end)


def has_section(text: str) -> bool:
    return _marked(_lines(text)) is not None


def remove_section(text: str) -> str:
    """``text`` without the section and the marked require line."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _lines(text)
    span = _marked(lines)
    if span is not None:
        lines = lines[: span[0]] + lines[span[1] + 1 :]
    lines = [line for line in lines if line.strip() != REQUIRE]
    return newline.join(lines)


def insert_section(text: str, settings: VacationSettings) -> str:
    """``text`` (a script without the section) with the require line first and the
    section after the script's own require commands. Raises InvalidInput when the
    script puts another command on the line its last require ends on."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _lines(text)
    tokens = tokenize(text)
    i, last_require_line = 0, 0
    while i < len(tokens) and tokens[i].kind == "identifier" and tokens[i].value == "require":
        while i < len(tokens) and tokens[i].kind != ";":
            i += 1
        if i < len(tokens):
            last_require_line = tokens[i].line
        i += 1
    at = len(lines) if i >= len(tokens) else tokens[i].line - 1
    if i < len(tokens) and tokens[i].line == last_require_line:
        raise InvalidInput(
            "your running script has a command on the same line as its "
            f"last require (line {last_require_line}); put that command "
            "on a line of its own in your Sieve client and save again"
        )
    if at == len(lines) and lines and lines[-1] == "":
        at -= 1  # before the final line end, not after it
    out = [REQUIRE, *lines[:at], *section(settings), *lines[at:]]
    return newline.join(out)


def read_section(text: str) -> VacationSettings:
    """The settings the marked section of ``text`` holds. Raises InvalidInput when it
    is missing or is not what the form writes (edited in a Sieve client)."""
    lines = _lines(text)
    span = _marked(lines)
    if span is None:
        raise InvalidInput("no vacation section")
    body = "\n".join([REQUIRE, *lines[span[0] : span[1] + 1]])
    try:
        script = sieve.parse(body)
    except sieve.SieveSyntaxError as exc:
        raise InvalidInput(f"the marked lines do not parse: {exc}") from None
    found = [n for top in script.commands for n in top.walk() if n.name == "vacation"]
    if len(found) != 1:
        raise InvalidInput("the marked lines hold no single vacation rule")
    node = found[0]
    days = node.tag("days")
    subject = node.tag("subject")
    addresses = node.tag("addresses")
    start = end = None
    for top in script.commands:
        for n in top.walk():
            if n.name != "currentdate":
                continue
            relation, value = n.tag("value"), n.string(1)
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"the marked lines hold a date {value!r}") from None
            if relation == "ge":
                start = day
            elif relation == "le":
                end = day
    return VacationSettings(
        True,
        subject if isinstance(subject, str) else "",
        node.string(0).replace("\r\n", "\n"),
        days if isinstance(days, int) else 7,
        start,
        end,
        addresses if isinstance(addresses, tuple) else (),
    )


def _has_vacation(text: str) -> bool:
    """Whether the script has a vacation rule outside the marked section."""
    try:
        script = sieve.parse(remove_section(text))
    except sieve.SieveSyntaxError:
        return False
    return any(n.name == "vacation" for top in script.commands for n in top.walk())


def disclosure(settings: VacationSettings) -> sieve.Disclosure:
    """What the rule alone lets the server see of each message (as the Filters tab
    says for a whole script)."""
    return sieve.parse(own_script(replace(settings, text=settings.text or "-"))).reads()


# -- reading and saving through the filter service ------------------------------------


class VacationForm:
    def __init__(self, filters: FilterService) -> None:
        self._filters = filters

    async def _texts(self, session: Session) -> tuple[str | None, str | None, str | None]:
        """(name of the running script, its text, the form's own script's text)."""
        store = self._filters.store(session.ref.region)
        active = await store.active(session.address)
        own = await store.get(session.address, OWN_SCRIPT)
        own_text = None if own is None else await self._filters.get(session, OWN_SCRIPT)
        if active is None:
            return None, None, own_text
        if active.name == OWN_SCRIPT:
            return OWN_SCRIPT, own_text, own_text
        return active.name, await self._filters.get(session, active.name), own_text

    async def state(self, session: Session) -> VacationState:
        name, text, own_text = await self._texts(session)
        other = name if name not in (None, OWN_SCRIPT) else None
        own_vacation = text is not None and other is not None and _has_vacation(text)
        if text is not None and has_section(text):
            try:
                settings = read_section(text)
            except InvalidInput as exc:
                return VacationState(
                    _remembered(own_text), False, name, other, own_vacation, unreadable=str(exc)
                )
            return VacationState(settings, True, name, other, own_vacation)
        return VacationState(_remembered(own_text), False, None, other, own_vacation)

    async def save(
        self, session: Session, settings: VacationSettings, *, via: str = "web"
    ) -> VacationState:
        """Store ``settings``: in the form's own script, and in the running script
        as the module docstring says. Raises InvalidInput (e.g. a quota)."""
        name, text, _own = await self._texts(session)
        # Settings are remembered in the form's own script, on or off.
        await self._filters.put(session, OWN_SCRIPT, own_script(settings), via=via)
        if name is None or name == OWN_SCRIPT:
            if settings.on and name is None:
                await self._filters.activate(session, OWN_SCRIPT, via=via)
            elif not settings.on and name == OWN_SCRIPT:
                await self._filters.activate(session, None, via=via)
        else:
            assert text is not None
            changed = remove_section(text)
            if settings.on:
                changed = insert_section(changed, settings)
            if changed != text:
                await self._filters.put(session, name, changed, via=via)
        return await self.state(session)


def _remembered(own_text: str | None) -> VacationSettings:
    """The settings last saved (off), or the defaults."""
    if own_text is None:
        return VacationSettings()
    try:
        return replace(read_section(own_text), on=False)
    except LetterlockError:
        return VacationSettings()
