"""What a letter to the issuing authority says, from a matter and its decision: a
list of blocks (pdf.Block) that letters.py renders as HTML (Jinja2) and as PDF.

- the **response** states, per account and category, what was decided and its legal
  basis: the law the request was served under, each reason (R-code) in a sentence,
  the policies cited, the route left open to the authority (mutual legal assistance,
  a European Production Order, the hosting customer), deadlines, and when the
  account holder is told;
- the **production certificate** covers a production package: it lists every item
  with its SHA-256, what was not included and why, and certifies the package.

The wording is data (``letter_templates/bases.json``); the decisions come from the
policies. Pure: no I/O beyond reading that file once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from letterlock.policy import Decision
from letterlock.policy.jurisdiction import RefusalGround
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.pdf import Block

LETTER_KINDS = ("response", "production-certificate")
"""``response``: the answer to the issuing authority, with the legal basis of each
outcome; ``production-certificate``: the cover letter and certification of a
production package."""
TEMPLATES = Path(__file__).with_name("letter_templates")


@functools.cache
def _bases() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(
        (TEMPLATES / "bases.json").read_text(encoding="utf-8")
    )
    return data


@dataclass(frozen=True)
class LetterContext:
    """What a letter needs besides the matter."""

    stage: int
    issued_at: datetime
    issued_by: str
    contact: str
    case_number: str | None
    public_key: str
    eu: frozenset[str]
    e_evidence: frozenset[str]
    """Member States bound by Regulation 2023/1543: they may use a European
    Production Order where others need mutual legal assistance."""
    refusal_grounds: Mapping[str, RefusalGround] = field(default_factory=dict)
    """The words of the grounds an enforcing state may raise (e_evidence.json), for a
    refusal's R14."""


@dataclass(frozen=True)
class LetterText:
    title: str
    blocks: tuple[Block, ...]


def _when(at: datetime) -> str:
    """A time as a letter writes it: 15 January 2025, 09:00 UTC."""
    return f"{at.day} {at:%B %Y, %H:%M} UTC"


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _heading(matter: Matter, ctx: LetterContext, title: str) -> list[Block]:
    request = matter.request
    issuer = request.issuer
    to = f"{issuer.name}, " if issuer.name else ""
    blocks = [
        Block("title", title),
        Block("meta", f"Date: {_when(ctx.issued_at)}"),
        Block("meta", f"To: {to}{issuer.authority} ({issuer.country})"),
        Block("meta", f"Our reference: {matter.id}, decision {ctx.stage}"),
    ]
    if ctx.case_number:
        blocks.append(Block("meta", f"Your reference: {ctx.case_number}"))
    served = request.served_at or request.received_at
    blocks += [
        Block("meta", f"Served: {_when(served)}"),
        Block("meta", f"Accounts named: {', '.join(request.targets) or '(none)'}"),
        Block("para", f"Categories asked for: {', '.join(request.categories)}"),
    ]
    return blocks


def _signature(matter: Matter, ctx: LetterContext) -> list[Block]:
    contact = f" (contact: {ctx.contact})" if ctx.contact else ""
    return [
        Block("heading", "Signature"),
        Block("para", f"Issued on {_when(ctx.issued_at)} by {ctx.issued_by} for the "
                      f"provider's legal team{contact}."),
        Block("small", "This letter is signed with the provider's Ed25519 legal signing key "
                       f"{ctx.public_key}. The signatures are in letter.pdf.sig and "
                       "letter.html.sig beside it; `letterlock legal verify-letter "
                       "letter.pdf` checks one."),
    ]  # fmt: skip


def response_text(matter: Matter, decision: Decision, ctx: LetterContext) -> LetterText:
    """The response to the issuing authority for ``decision``."""
    bases = _bases()
    request = matter.request
    basis = bases["instruments"].get(request.instrument, request.instrument)
    title = f"Response to {basis.split(' under ')[0]}"
    blocks = _heading(matter, ctx, title)
    blocks += [
        Block("heading", "The request"),
        Block("para", f"We received {basis}, asking us to {request.action} "
                      f"{', '.join(request.categories)} data."),
        Block("heading", "Our answer and its legal basis"),
    ]  # fmt: skip
    routes: dict[str, None] = {}
    overridden = False
    for target, category, finding in decision.findings():
        facts = matter.facts.get(target)
        values = {
            "category": category,
            "issuer_country": request.issuer.country,
            "data_country": (facts.location if facts and facts.location else "another country"),
        }
        outcome = bases["outcomes"].get(finding.outcome, finding.outcome)
        blocks.append(Block("item", f"{target}, {category}: {outcome}."))
        for code in finding.reasons:
            sentence = bases["reasons"].get(code)
            if sentence:
                blocks.append(Block("para", f"{code}: {_fill(sentence, **values)}"))
            answer = facts.enforcing_state if facts else None
            if code == "R14" and answer is not None:
                for ground in answer.refusal_grounds:
                    known = ctx.refusal_grounds.get(ground)
                    words = f"{known.words} ({known.article})" if known else ground
                    blocks.append(Block("para", f"Ground raised on {_when(answer.answered_at)}"
                                                f": {words}."))
        cited = [p for p in finding.policies if not p.startswith("override:")]
        if len(cited) < len(finding.policies):
            overridden = True
        if cited:
            blocks.append(Block("small", "Policies applied: " + ", ".join(cited)))
        key = finding.outcome
        if (
            key == "redirect-mlat"
            and values["data_country"] in ctx.eu
            and request.issuer.country in ctx.e_evidence
        ):
            key = "redirect-mlat-eu"
        route = bases["routes"].get(key, "")
        if route:
            routes[_fill(route, **values)] = None
    if overridden and matter.justification:
        blocks += [
            Block("heading", "Decision of the legal team"),
            Block("para", "Part of this answer was decided by our legal team rather than "
                          f"by our published policy, on this ground: {matter.justification}"),
        ]  # fmt: skip
    if routes:
        blocks.append(Block("heading", "What follows"))
        blocks += [Block("para", text) for text in routes]
    if decision.deadlines:
        blocks.append(Block("heading", "Dates"))
        blocks += [Block("item", f"{d.kind}: {_when(d.due)}") for d in decision.deadlines]
    notice = decision.user_notice
    words = bases["notices"].get(notice.when, "")
    if words:
        not_before = _when(notice.not_before) if notice.not_before else "its end"
        blocks += [
            Block("heading", "Notice to the account holder"),
            Block("para", _fill(words, not_before=not_before)),
        ]
    blocks += _signature(matter, ctx)
    return LetterText(title, tuple(blocks))


def certificate_text(
    matter: Matter,
    package: str,
    manifest: Mapping[str, Any],
    manifest_sha256: str,
    ctx: LetterContext,
) -> LetterText:
    """The cover letter and certification of the production package ``package``."""
    title = "Production certificate"
    blocks = _heading(matter, ctx, title)
    items: Sequence[Mapping[str, Any]] = manifest.get("items", [])
    blocks += [
        Block("meta", f"Package: {package}"),
        Block("meta", f"Package made: {manifest.get('created_at', '')}"),
        Block("para", f"Signed manifest SHA-256: {manifest_sha256}"),
        Block("heading", "Certification"),
        Block("para", f"I certify that the production package named above was made from "
                      "the provider's systems in answer to the request, by the process "
                      "the provider uses for every production, at the time stated; that "
                      f"it holds exactly the {len(items)} items listed below, each with the "
                      "SHA-256 listed; and that its manifest is signed with the provider's "
                      "key named below (the package's manifest.sig)."),
        Block("heading", "Items produced"),
    ]  # fmt: skip
    if not items:
        blocks.append(Block("para", "None."))
    for item in items:
        blocks.append(Block("item", f"{item.get('path')}: {item.get('category')} of "
                                    f"{item.get('target')}, {item.get('size')} bytes, "
                                    f"SHA-256 {item.get('sha256')}"))  # fmt: skip
    earlier = manifest.get("disclosed_earlier") or []
    if earlier:
        blocks.append(Block("heading", "Produced at an earlier stage"))
        blocks += [Block("item", f"{t}, {c}") for t, c in earlier]
    missing = manifest.get("unavailable") or []
    if missing:
        blocks.append(Block("heading", "Not included"))
        blocks += [Block("item", f"{m.get('target')}, {m.get('category')}: {m.get('reason')}")
                   for m in missing]  # fmt: skip
    statements = manifest.get("statements") or []
    if statements:
        blocks.append(Block("heading", "Statements"))
        blocks += [Block("para", str(s)) for s in statements]
    blocks += _signature(matter, ctx)
    return LetterText(title, tuple(blocks))
