"""What each command and test accepts: a table read by the parser. A row names the
extension that must be required, the tags (each in a group of which at most one may
be given, with the kind of value it takes), the positional arguments, and whether a
test, a test list or a block follows."""

from __future__ import annotations

from dataclasses import dataclass

EXTENSIONS: tuple[str, ...] = (
    "fileinto", "reject", "ereject", "envelope", "body", "copy", "vacation",
    "vacation-seconds", "imap4flags", "encoded-character", "comparator-i;octet",
    "comparator-i;ascii-casemap", "comparator-i;ascii-numeric", "relational",
    "subaddress", "mailbox", "variables", "date",
)
"""What the SIEVE capability lists, in that order."""

# Argument kinds: "string" (a single string), "strings" (a string list), "number".
Kind = str


@dataclass(frozen=True)
class TagSpec:
    group: str
    kind: Kind | None = None
    extension: str | None = None


@dataclass(frozen=True)
class Spec:
    extension: str | None = None
    tags: tuple[str, ...] = ()
    positional: tuple[tuple[Kind, ...], ...] = ((),)
    """The accepted shapes of positional arguments (usually one)."""
    tests: str = "none"  # "none", "one", "list"
    block: bool = False


TAGS: dict[str, TagSpec] = {
    "is": TagSpec("match"),
    "contains": TagSpec("match"),
    "matches": TagSpec("match"),
    "count": TagSpec("match", "string", "relational"),
    "value": TagSpec("match", "string", "relational"),
    "comparator": TagSpec("comparator", "string"),
    "all": TagSpec("part"),
    "localpart": TagSpec("part"),
    "domain": TagSpec("part"),
    "user": TagSpec("part", None, "subaddress"),
    "detail": TagSpec("part", None, "subaddress"),
    "over": TagSpec("size"),
    "under": TagSpec("size"),
    "raw": TagSpec("transform"),
    "content": TagSpec("transform", "strings"),
    "text": TagSpec("transform"),
    "copy": TagSpec("copy", None, "copy"),
    "flags": TagSpec("flags", "strings", "imap4flags"),
    "create": TagSpec("create", None, "mailbox"),
    "days": TagSpec("period", "number"),
    "seconds": TagSpec("period", "number", "vacation-seconds"),
    "subject": TagSpec("subject", "string"),
    "from": TagSpec("from", "string"),
    "addresses": TagSpec("addresses", "strings"),
    "mime": TagSpec("mime"),
    "handle": TagSpec("handle", "string"),
    "zone": TagSpec("zone", "string", "date"),
    "originalzone": TagSpec("zone", None, "date"),
    # set modifiers (RFC 5229 4.1): at most one of each precedence
    "lower": TagSpec("mod40", None, "variables"),
    "upper": TagSpec("mod40", None, "variables"),
    "lowerfirst": TagSpec("mod30", None, "variables"),
    "upperfirst": TagSpec("mod30", None, "variables"),
    "quotewildcard": TagSpec("mod20", None, "variables"),
    "length": TagSpec("mod10", None, "variables"),
}

_MATCH = ("is", "contains", "matches", "count", "value", "comparator")
_ADDRESS = (*_MATCH, "all", "localpart", "domain", "user", "detail")

COMMANDS: dict[str, Spec] = {
    "require": Spec(positional=(("strings",),)),
    "if": Spec(tests="one", block=True),
    "elsif": Spec(tests="one", block=True),
    "else": Spec(block=True),
    "stop": Spec(),
    "keep": Spec(tags=("flags",)),
    "discard": Spec(),
    "fileinto": Spec("fileinto", ("copy", "flags", "create"), (("string",),)),
    "redirect": Spec(None, ("copy",), (("string",),)),
    "reject": Spec("reject", (), (("string",),)),
    "ereject": Spec("ereject", (), (("string",),)),
    "vacation": Spec("vacation", ("days", "seconds", "subject", "from", "addresses",
                                  "mime", "handle"), (("string",),)),
    "setflag": Spec("imap4flags", (), (("strings",), ("string", "strings"))),
    "addflag": Spec("imap4flags", (), (("strings",), ("string", "strings"))),
    "removeflag": Spec("imap4flags", (), (("strings",), ("string", "strings"))),
    "set": Spec("variables", ("lower", "upper", "lowerfirst", "upperfirst",
                              "quotewildcard", "length"), (("string", "string"),)),
}

TESTS: dict[str, Spec] = {
    "address": Spec(None, _ADDRESS, (("strings", "strings"),)),
    "envelope": Spec("envelope", _ADDRESS, (("strings", "strings"),)),
    "header": Spec(None, _MATCH, (("strings", "strings"),)),
    "exists": Spec(None, (), (("strings",),)),
    "size": Spec(None, ("over", "under"), (("number",),)),
    "true": Spec(),
    "false": Spec(),
    "not": Spec(tests="one"),
    "allof": Spec(tests="list"),
    "anyof": Spec(tests="list"),
    "body": Spec("body", (*_MATCH, "raw", "content", "text"), (("strings",),)),
    "hasflag": Spec("imap4flags", _MATCH, (("strings",), ("strings", "strings"))),
    "string": Spec("variables", _MATCH, (("strings", "strings"),)),
    "date": Spec("date", (*_MATCH, "zone", "originalzone"), (("string", "string", "strings"),)),
    "currentdate": Spec("date", (*_MATCH, "zone"), (("string", "strings"),)),
    "mailboxexists": Spec("mailbox", (), (("strings",),)),
}

COMPARATORS = {"i;octet": None, "i;ascii-casemap": None,
               "i;ascii-numeric": "comparator-i;ascii-numeric"}
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")
ENVELOPE_PARTS = ("from", "to")
