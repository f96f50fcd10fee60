"""What the steps of a legal matter share: the state and the workflow's own methods
that LegalService (services/legal/matters.py) provides to its bases (the four-eyes,
gag and enforcing-state steps), declared once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from letterlock.audit.events import EventType
from letterlock.policy import LegalRequest, PolicyEngine
from letterlock.services.legal.matter import Matter
from letterlock.storage.legal_sqlite import LegalStore, LegalTxn


class MatterSteps:
    """A base of LegalService's step groups; every method here is LegalService's."""

    _store: LegalStore
    _engine: PolicyEngine
    _clock: Callable[[], datetime]

    async def _recover(self) -> None:
        raise NotImplementedError

    async def show(self, matter_id: str) -> Matter:
        raise NotImplementedError

    def _log(self, txn: LegalTxn, kind: EventType, actor: str, request: LegalRequest,
             matter: str, account: str | None = None,
             details: Sequence[tuple[str, str]] = ()) -> None:
        raise NotImplementedError

    async def _commit(self, txn: LegalTxn, *, reveal: str | None = None,
                      reseal: str | None = None) -> None:
        raise NotImplementedError
