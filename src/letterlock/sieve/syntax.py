"""The validated Sieve tree: each command and test with its tagged arguments
resolved (``tags`` maps a tag to its value, or True for a tag without one) and its
positional arguments in order."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    name: str
    line: int
    tags: dict[str, str | int | tuple[str, ...] | bool] = field(default_factory=dict, hash=False)
    args: tuple[tuple[str, ...] | int, ...] = ()
    tests: tuple[Node, ...] = ()
    block: tuple[Node, ...] | None = None

    def tag(self, name: str) -> str | int | tuple[str, ...] | bool | None:
        return self.tags.get(name)

    def strings(self, index: int) -> tuple[str, ...]:
        value = self.args[index]
        assert isinstance(value, tuple)
        return value

    def string(self, index: int) -> str:
        return self.strings(index)[0]

    def number(self, index: int) -> int:
        value = self.args[index]
        assert isinstance(value, int)
        return value

    def walk(self) -> list[Node]:
        out = [self]
        for t in self.tests:
            out += t.walk()
        for c in self.block or ():
            out += c.walk()
        return out
