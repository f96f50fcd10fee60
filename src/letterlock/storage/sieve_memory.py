"""An in-memory filter store (tests and the reference of the contract)."""

from __future__ import annotations

from dataclasses import replace

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.sieve_contracts import SieveRecord


class MemorySieveStore:
    def __init__(self) -> None:
        self._scripts: dict[tuple[str, str], SieveRecord] = {}
        self._vacation: dict[tuple[str, bytes], float] = {}
        self._options: dict[tuple[str, str], str] = {}

    async def put(self, account: str, name: str, sealed: bytes, size: int,
                  delivery: bytes | None) -> None:
        old = self._scripts.get((account, name))
        active = old is not None and old.active
        self._scripts[(account, name)] = SieveRecord(account, name, sealed, size, active,
                                                     delivery if active else None)

    async def get(self, account: str, name: str) -> SieveRecord | None:
        return self._scripts.get((account, name))

    async def list(self, account: str) -> list[SieveRecord]:
        return sorted((r for (a, _), r in self._scripts.items() if a == account),
                      key=lambda r: r.name)

    async def rename(self, account: str, old: str, new: str) -> None:
        record = self._scripts.get((account, old))
        if record is None:
            raise NotFound(f"no script {old}")
        if (account, new) in self._scripts:
            raise AlreadyExists(f"script {new} exists")
        del self._scripts[(account, old)]
        self._scripts[(account, new)] = replace(record, name=new)

    async def delete(self, account: str, name: str) -> None:
        if self._scripts.pop((account, name), None) is None:
            raise NotFound(f"no script {name}")

    async def activate(self, account: str, name: str | None, delivery: bytes | None) -> None:
        if name is not None and (account, name) not in self._scripts:
            raise NotFound(f"no script {name}")
        for (a, n), record in list(self._scripts.items()):
            if a == account:
                on = n == name
                self._scripts[(a, n)] = replace(record, active=on,
                                                delivery=delivery if on else None)

    async def active(self, account: str) -> SieveRecord | None:
        return next((r for r in await self.list(account) if r.active), None)

    async def delete_account(self, account: str) -> None:
        for key in [k for k in self._scripts if k[0] == account]:
            del self._scripts[key]
        for vkey in [k for k in self._vacation if k[0] == account]:
            del self._vacation[vkey]
        for okey in [k for k in self._options if k[0] == account]:
            del self._options[okey]

    async def option(self, account: str, name: str) -> str | None:
        return self._options.get((account, name))

    async def set_option(self, account: str, name: str, value: str | None) -> None:
        if value is None:
            self._options.pop((account, name), None)
        else:
            self._options[(account, name)] = value

    async def options(self, account: str) -> dict[str, str]:
        return {n: v for (a, n), v in self._options.items() if a == account}

    async def vacation_until(self, account: str, key: bytes) -> float | None:
        return self._vacation.get((account, key))

    async def remember_vacation(self, account: str, key: bytes, until: float) -> None:
        self._vacation[(account, key)] = until

    async def close(self) -> None:
        pass
