"""The legal HTTP router in front of a real LegalService on a test App, with bearer
tokens mapped to operators, for the API tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException

from letterlock.app import App
from letterlock.http.legal_api import OperatorIdentity, make_legal_router
from letterlock.policy import PolicyEngine, load_jurisdictions, load_profile
from letterlock.services.legal.matters import LegalService
from letterlock.storage.legal_sqlite import LegalStore


@contextlib.asynccontextmanager
async def legal_api_client(app: App, tokens: Mapping[str, OperatorIdentity],
                           **service_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client of the router; ``service_options`` go to LegalService."""
    store = LegalStore(app.config.control_dir, fsync=False)
    service = LegalService(store, app.control, app.cells, app.accounts, app.delivery,
                           app.audit, PolicyEngine(load_profile("location-2016"),
                                                   load_jurisdictions()),
                           "US", app.config.control_dir / "legal", **service_options)

    def operator(authorization: str = Header("")) -> OperatorIdentity:
        who = tokens.get(authorization.removeprefix("Bearer "))
        if who is None:
            raise HTTPException(401, "unknown operator")
        return who

    api = FastAPI()
    api.include_router(make_legal_router(lambda: service, operator))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                     base_url="http://test") as c:
            yield c
    finally:
        await store.close()
