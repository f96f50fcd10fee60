"""The facts a matter is evaluated on (LEGAL.md "Facts"): existence, location,
hosted tenancy and key custody from the store; US-person status, residence and
conflicting laws from what the legal team asserts when filing. An asserted fact the
store knows is checked against it: the store is not overridden."""

from __future__ import annotations

import json
from collections.abc import Mapping

from letterlock.errors import InvalidInput
from letterlock.policy import AccountFacts, AssertedFacts, LegalRequest
from letterlock.services.cells import Cells
from letterlock.storage.contracts import ControlStore

HOSTED_TENANT_SETTING = "legal.hosted_tenant_domains"
"""Control-store setting: comma-separated domains whose mail belongs to a hosted
customer (LEGAL.md row 11)."""
FROM_THE_STORE = ("exists", "location", "hosted_tenant", "key_custody")


async def facts_from_store(control: ControlStore, cells: Cells, request: LegalRequest,
                           asserted: Mapping[str, AssertedFacts]) -> dict[str, AccountFacts]:
    """The facts of each target. Raises InvalidInput naming the field for asserted
    facts about an address the request does not name, or that the store contradicts."""
    strangers = sorted(set(asserted) - set(request.targets))
    if strangers:
        raise InvalidInput(f"facts.{strangers[0]}: not a target of the request "
                           f"(targets: {', '.join(request.targets) or 'none'})")
    countries = {r.id: r.country for r in await control.list_regions()}
    tenants = {d.strip().lower() for d in
               (await control.get_setting(HOSTED_TENANT_SETTING) or "").split(",")
               if d.strip()}
    out: dict[str, AccountFacts] = {}
    for target in request.targets:
        told = asserted.get(target) or AssertedFacts()
        region = await control.lookup(target)
        record = None if region is None else await cells.get(region).store.get_account(target)
        if region is None or record is None:
            facts = AccountFacts(False, None, False, None, False, (), "sealed")
            _check(target, told, facts, ("exists",))
        else:
            facts = AccountFacts(
                exists=True,
                location=countries[region],
                us_person=bool(told.us_person),
                residence=told.residence,
                hosted_tenant=target.rsplit("@", 1)[1] in tenants,
                conflict_with=told.conflict_with or (),
                key_custody=record.custody,
                enforcing_state=told.enforcing_state,
            )
            _check(target, told, facts, FROM_THE_STORE)
        out[target] = facts
    return out


def _check(target: str, told: AssertedFacts, facts: AccountFacts,
           fields: tuple[str, ...]) -> None:
    for field in fields:
        given, known = getattr(told, field), getattr(facts, field)
        if given is not None and given != known:
            raise InvalidInput(f"facts.{target}.{field}: the store says {json.dumps(known)}, "
                               f"not {json.dumps(given)} (facts the store knows are not "
                               "asserted)")
