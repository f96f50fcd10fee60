"""The legal API's JSON formats, typed for the OpenAPI schema: Request, Facts,
Decision and Matter as the API takes and returns them (docs/legal-formats.md is the
prose reference; a test keeps both in step with the code).

These models only describe: the routes still parse with the policy library (whose
errors name the offending field) and answer with ``Matter.to_json()``; the models are
named in the routes' ``responses`` and request bodies, which puts them in
``components/schemas``. Every closed vocabulary comes from the code's own tuples.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.config import JsonDict

from letterlock.policy.decision import TRANSPARENCY_BUCKETS
from letterlock.policy.model import (
    ACTIONS,
    AUTHORITIES,
    CATEGORIES,
    INSTRUMENTS,
    KEY_CUSTODY,
    REFUSAL_GROUNDS,
)
from letterlock.policy.rules import FLAGS, NOTICES, OUTCOMES, REASONS
from letterlock.services.legal.approval import KINDS
from letterlock.services.legal.letter_text import LETTER_KINDS
from letterlock.services.legal.matters import STATES

FORMATS_DOC = "docs/legal-formats.md"
_TIME = "ISO 8601 time, UTC (a date alone means its midnight)"
_COUNTRY: JsonDict = {"pattern": "^[A-Z]{2}$"}


def _enum(values: tuple[str, ...], description: str = "", default: Any = ...) -> Any:
    return Field(default, description=description or None,
                 json_schema_extra={"enum": list(values)})


def _enum_list(values: tuple[str, ...], description: str = "", default: Any = ...) -> Any:
    return Field(default, description=description or None,
                 json_schema_extra={"items": {"type": "string", "enum": list(values)}})


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Issuer(_Closed):
    country: str = Field(description="Issuing state (ISO 3166 alpha-2).",
                         json_schema_extra=_COUNTRY)
    authority: str = _enum(AUTHORITIES)
    name: str = ""
    judge_validated: bool = False
    verified: bool = Field(False, description="Authenticity confirmed; false rejects (R08).")


class Offence(_Closed):
    max_penalty_years: int = Field(0, ge=0)
    listed: bool = False
    country: str | None = Field(None, description="Where the offence was committed "
                                "(default: the issuer's country).", json_schema_extra=_COUNTRY)


class Gag(_Closed):
    """``{"until": TIME}`` or ``{"indefinite": true}``."""

    until: str | None = Field(None, description=_TIME)
    indefinite: bool | None = None


class DateRange(_Closed):
    from_: str | None = Field(None, alias="from", description="First day or time (inclusive).")
    to: str | None = Field(None, description="Last day or time (inclusive).")


class Request(_Closed):
    """A legal request (docs/legal-formats.md#request)."""

    id: str | None = Field(None, description="Matter id; assigned when filed if absent.")
    received_at: str = Field(description=_TIME)
    served_at: str | None = Field(None, description=_TIME + "; default: received_at.")
    issuer: Issuer
    instrument: str = _enum(INSTRUMENTS)
    action: str = _enum(ACTIONS, default="produce")
    categories: list[str] = _enum_list(CATEGORIES)
    targets: list[str] = Field(default_factory=list, description="Account addresses.")
    selector: str | None = Field(None, description='"query": a non-specific request.')
    offence: Offence | None = None
    emergency: bool = False
    gag: Gag | None = None
    renewal_of_served_at: str | None = Field(None, description=_TIME)
    date_range: DateRange | None = None


class EnforcingStateAnswer(_Closed):
    """What the enforcing state of a European Production Order answered
    (docs/legal-e-evidence.md)."""

    answered_at: str = Field(description=_TIME)
    refusal_grounds: list[str] = _enum_list(
        REFUSAL_GROUNDS, "Grounds raised (art. 12(1)); empty: it raises none.",
        default=[])


class AccountFacts(_Closed):
    exists: bool = True
    location: str | None = Field(None, json_schema_extra=_COUNTRY)
    us_person: bool | None = Field(None, description="Unknown counts as false.")
    residence: str | None = Field(None, json_schema_extra=_COUNTRY)
    hosted_tenant: bool = False
    conflict_with: list[str] = Field(default_factory=list,
                                     json_schema_extra={"items": {"type": "string",
                                                                  **_COUNTRY}})
    key_custody: str = _enum(KEY_CUSTODY, default="sealed")
    enforcing_state: EnforcingStateAnswer | None = None


class Facts(RootModel[dict[str, AccountFacts]]):
    """Facts per target address."""


class Finding(_Closed):
    outcome: str = _enum(OUTCOMES)
    reasons: list[str] = _enum_list(REASONS)
    policies: list[str] = Field(description="Policy ids, the deciding one first; "
                                "override:ACTOR when a human overrode it.")
    flags: list[str] = _enum_list(FLAGS)


class Deadline(_Closed):
    kind: str = Field(description="production, challenge, preservation-expiry, "
                      "enforcing-state-objection, user-notice, or a policy's own kind.")
    due: str = Field(description=_TIME)


class UserNotice(_Closed):
    when: str = _enum(NOTICES)
    not_before: str | None = Field(description=_TIME)


class Decision(_Closed):
    """A recommendation or decision (docs/legal-formats.md#decision)."""

    profile: str
    evaluated_at: str = Field(description=_TIME)
    targets: dict[str, dict[str, Finding]] = Field(
        description="Per target address (or * for a non-specific request), per category.")
    deadlines: list[Deadline]
    user_notice: UserNotice
    transparency: str = _enum(TRANSPARENCY_BUCKETS)


class DeadlineStatus(_Closed):
    kind: str
    due: str = Field(description=_TIME)
    done: bool
    overdue: bool


class Hold(_Closed):
    address: str
    region: str
    placed_at: str
    expires_at: str
    released_at: str | None


class Notice(_Closed):
    address: str
    due_at: str | None
    sent_at: str | None


class Proposal(_Closed):
    """A decision put to a second operator (four-eyes; docs/legal-formats.md#proposal)."""

    decision: Decision
    proposed_by: str
    proposed_at: str = Field(description=_TIME)
    was: str = Field(description="The state it was decided in, where a refusal "
                     "sends the matter back.")
    needs: list[str] = _enum_list(KINDS)
    justification: str | None
    override: dict[str, str] = Field(description="The override's outcome, justification "
                                     "and scope (targets, categories); empty when the "
                                     "recommendation was accepted.")
    outcome: str | None = Field(description="null while it waits; approved or refused.")
    resolved_by: str | None
    resolved_at: str | None = Field(description=_TIME)
    reason: str | None = Field(description="Why it was refused.")


class Matter(_Closed):
    """A legal matter as the API returns it (docs/legal-formats.md#matter)."""

    id: str
    state: str = _enum(STATES)
    filed_at: str
    filed_by: str
    request: Request
    facts: Facts
    recommendation: Decision
    decision: Decision | None
    overridden: bool
    justification: str | None
    decided_by: str | None
    package: str | None
    next_due: str | None
    overdue: bool
    deadlines: list[DeadlineStatus]
    closed_at: str | None
    holds: list[Hold]
    notices: list[Notice]
    proposal: Proposal | None = Field(description="The latest decision put to a second "
                                      "operator (four-eyes), if any.")


class MatterList(RootModel[list[Matter]]):
    """Matters, in order of filing."""


class Note(_Closed):
    """A note in the matter file (append-only)."""

    number: int = Field(ge=1, description="1, 2, ... in the matter.")
    added_at: str = Field(description=_TIME)
    added_by: str
    text: str


class Attachment(_Closed):
    """An original filed with the matter (sealed; its content is never in JSON)."""

    id: str
    name: str
    media_type: str
    size: int = Field(ge=1, description="Bytes of the original.")
    sha256: str = Field(description="SHA-256 of the original, hex.",
                        json_schema_extra={"pattern": "^[0-9a-f]{64}$"})
    added_at: str = Field(description=_TIME)
    added_by: str


class Letter(_Closed):
    """A signed letter kept with the matter (docs/legal-formats.md#letters)."""

    id: str
    kind: str = _enum(LETTER_KINDS)
    stage: int = Field(ge=1, description="Which decision of the matter it answers.")
    issued_at: str = Field(description=_TIME)
    issued_by: str
    html_sha256: str
    pdf_sha256: str


class LetterList(RootModel[list[Letter]]):
    """Letters, in order of issue."""


class MatterFile(_Closed):
    """The matter file (docs/legal-formats.md#matter-file)."""

    matter: str
    case_number: str | None
    notes: list[Note]
    attachments: list[Attachment]
    letters: list[Letter]


def model_response(model: type[BaseModel], status: int = 200,
                   ) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": f"See {FORMATS_DOC}."}}


ATTACHMENT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "*/*": {"schema": {"type": "string", "format": "binary"}}}}}
"""``POST .../attachments``: the original's bytes as the body; its Content-Type is
recorded as the media type (sniffed when absent or application/octet-stream)."""


def matter_response(status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Matter, "description": f"The matter ({FORMATS_DOC})."}}


FILE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["request"], "additionalProperties": False,
        "properties": {"request": {"$ref": "#/components/schemas/Request"},
                       "facts": {"anyOf": [{"$ref": "#/components/schemas/Facts"},
                                           {"type": "null"}]}}}}}}}
"""The body of ``POST /api/legal/matters``: the request and the facts the legal team
asserts (those the store knows may be given and must agree with it). FastAPI merges
it into the body schema it makes (a ``$ref`` to its loose ``Body_file_matter...``):
in OpenAPI 3.1 both apply, and this one is the stricter."""
