"""RFC 5229 variables: ${name} and ${N} substitution in the strings of a command
or test when it runs, and the modifiers of ``set``."""

from __future__ import annotations

import re
from dataclasses import replace

from letterlock.sieve.errors import SieveRuntimeError
from letterlock.sieve.syntax import Node

MAX_VALUE = 4096
"""Longest variable value, as Pigeonhole's default sieve_variables_max_variable_size."""
MAX_VARIABLES = 255

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")
_NOT_EXPANDED = {"set": 0, "setflag": 0, "addflag": 0, "removeflag": 0, "hasflag": 0}
"""Commands whose first argument names a variable (when they have two)."""


class Variables:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.matches: list[str] = []

    def get(self, name: str) -> str:
        if name.isdigit():
            index = int(name)
            return self.matches[index] if index < len(self.matches) else ""
        return self.values.get(name.lower(), "")

    def set(self, name: str, value: str) -> None:
        if len(self.values) >= MAX_VARIABLES and name.lower() not in self.values:
            raise SieveRuntimeError(f"more than {MAX_VARIABLES} variables")
        self.values[name.lower()] = value[:MAX_VALUE]

    def expand(self, text: str) -> str:
        if "${" not in text:
            return text
        return _REFERENCE.sub(lambda m: self.get(m.group(1)), text)[: MAX_VALUE * 4]

    def expand_node(self, node: Node) -> Node:
        """``node`` with every string substituted (not variable names, comparators
        or relations); its sub-tests are expanded when they run."""
        keep_first = node.name in _NOT_EXPANDED and (node.name == "set" or len(node.args) == 2)
        args = tuple(
            arg if isinstance(arg, int) or (i == 0 and keep_first)
            else tuple(self.expand(s) for s in arg)
            for i, arg in enumerate(node.args))
        tags = {k: (self.expand(v) if isinstance(v, str) and k not in
                    ("comparator", "count", "value") else
                    tuple(self.expand(s) for s in v) if isinstance(v, tuple) else v)
                for k, v in node.tags.items()}
        return replace(node, args=args, tags=tags)


def modified(node: Node, value: str) -> str:
    """The value of a set command after its modifiers, highest precedence first."""
    if node.tag("lower"):
        value = value.lower()
    elif node.tag("upper"):
        value = value.upper()
    if node.tag("lowerfirst"):
        value = value[:1].lower() + value[1:]
    elif node.tag("upperfirst"):
        value = value[:1].upper() + value[1:]
    if node.tag("quotewildcard"):
        value = re.sub(r"([*?\\])", r"\\\1", value)
    if node.tag("length"):
        value = str(len(value))
    return value
