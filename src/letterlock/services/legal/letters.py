"""Signed letters to the issuing authority, kept with the matter.

``issue_letters`` writes, for the matter's current decision, the **response** (the
legal basis of each outcome: letter_text.py) and, when the decision produced a
package, its **production certificate**; each as HTML (Jinja2,
``letter_templates/letter.html``) and PDF (pdf.py), under
``HOME/control/legal/letters/ID/``::

    letter.html, letter.pdf            the letter
    letter.html.sig, letter.pdf.sig    detached Ed25519 signatures (below)
    letter.json                        what it answers: matter, kind, stage, the
                                       decision's or manifest's SHA-256, the files'

A signature file is JSON: ``format`` (``letterlock-letter-signature/1``), ``file``,
``sha256`` and ``size`` of the signed file, ``matter``, ``letter``, ``public_key``
(hex) and ``signature`` (hex): Ed25519 over the file's bytes, with the legal signing
key of the production packages (production.py). ``verify_letter`` (``letterlock legal
verify-letter``) checks it. Each letter is recorded in the legal database with its
``legal:letter:issued`` event in one step; a second letter of a kind for the same
decision (or package) is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from letterlock.audit.events import EventType
from letterlock.errors import InvalidInput, NotFound, Refused
from letterlock.policy import PolicyEngine, format_time
from letterlock.services.legal.letter_text import (
    LETTER_KINDS,
    TEMPLATES,
    LetterContext,
    LetterText,
    certificate_text,
    response_text,
)
from letterlock.services.legal.matter_file import LetterInfo, MatterFileSteps
from letterlock.services.legal.pdf import render_pdf
from letterlock.services.legal.production import signing_key
from letterlock.storage import legal_file_sqlite as rows
from letterlock.storage.durable import write_atomically
from letterlock.storage.legal_sqlite import LegalTxn

SIGNATURE_FORMAT = "letterlock-letter-signature/1"
LETTERS_DIR = "letters"
LETTER_FILES = ("letter.html", "letter.pdf", "letter.html.sig", "letter.pdf.sig", "letter.json")

_JINJA = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
)


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def render_html(letter: LetterText, footer: str) -> bytes:
    template = _JINJA.get_template("letter.html")
    return template.render(title=letter.title, blocks=letter.blocks, footer=footer).encode()


@dataclass(frozen=True)
class LetterCheck:
    ok: bool
    matter: str | None
    letter: str | None
    public_key: str | None
    problems: tuple[str, ...]


def verify_letter(data: bytes, signature: bytes, public_key_hex: str | None = None) -> LetterCheck:
    """Check a letter's detached signature (pure). ``public_key_hex`` pins the key."""
    try:
        doc = json.loads(signature)
        if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"not a {SIGNATURE_FORMAT} file")
        key_hex = str(doc["public_key"])
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        raw = bytes.fromhex(str(doc["signature"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed letter signature: {exc}") from exc
    problems = []
    if public_key_hex is not None and public_key_hex.lower() != key_hex.lower():
        problems.append("signed by a different key than the one pinned")
    if hashlib.sha256(data).hexdigest() != doc.get("sha256"):
        problems.append("the letter's SHA-256 is not the one signed")
    try:
        key.verify(raw, data)
    except InvalidSignature:
        problems.append("the signature does not verify")
    return LetterCheck(not problems, doc.get("matter"), doc.get("letter"), key_hex, tuple(problems))


def _write_letter(folder: Path, files: Mapping[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomically(folder / name, data)


class LetterSteps(MatterFileSteps):
    """``issue_letters`` of LegalService (its base, like FourEyes)."""

    _engine: PolicyEngine
    _contact: str

    async def issue_letters(
        self, matter_id: str, actor: str, kinds: tuple[str, ...] = LETTER_KINDS
    ) -> list[LetterInfo]:
        """Write the letters for the matter's current decision: the response and, when
        it produced a package, its certificate (``kinds`` narrows it). Refused when
        the matter is not decided, or each asked letter exists already."""
        unknown = set(kinds) - set(LETTER_KINDS)
        if unknown or not kinds:
            raise InvalidInput(f"letter kinds are {', '.join(LETTER_KINDS)}")
        matter = await self.show(matter_id)
        if matter.decision is None:
            raise Refused(f"matter {matter_id} is {matter.state}: letters answer a decision")
        record = await self.matter_file(matter_id)
        existing = await self._store.read(rows.letters_of(matter_id))
        key = await asyncio.to_thread(signing_key, self._dir)
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
        )
        now = self._clock()
        issued: list[LetterInfo] = []
        for kind in kinds:
            subject, text = None, None
            done = [x for x in existing if x.kind == kind]
            jurisdictions = self._engine.jurisdictions
            ctx = LetterContext(
                len(done) + 1,
                now,
                actor,
                self._contact,
                record.case_number,
                public,
                jurisdictions.eu,
                jurisdictions.e_evidence,
                jurisdictions.e_evidence_rules.refusal_grounds,
            )
            if kind == "response":
                subject = _digest(matter.decision.to_json())
                text = response_text(matter, matter.decision, ctx)
            elif matter.package is not None:
                manifest_bytes = await asyncio.to_thread(
                    (Path(matter.package) / "manifest.json").read_bytes
                )
                subject = hashlib.sha256(manifest_bytes).hexdigest()
                text = certificate_text(
                    matter, Path(matter.package).name, json.loads(manifest_bytes), subject, ctx
                )
            if subject is None or text is None or any(x.subject_sha256 == subject for x in done):
                continue
            issued.append(await self._issue(matter_id, actor, kind, ctx, subject, text, key))
        if not issued:
            raise Refused(
                f"matter {matter_id}: no new letter to write (each one asked for "
                "exists for this decision, or nothing was produced to certify)"
            )
        return issued

    async def _issue(
        self,
        matter_id: str,
        actor: str,
        kind: str,
        ctx: LetterContext,
        subject: str,
        text: LetterText,
        key: Any,
    ) -> LetterInfo:
        letter_id = f"L-{secrets.token_hex(6)}"
        footer = f"{text.title}, matter {matter_id}, letter {letter_id}"
        html = render_html(text, footer)
        pdf = render_pdf(text.blocks, title=text.title, footer=footer, created=ctx.issued_at)

        def signature(name: str, data: bytes) -> bytes:
            doc = {
                "format": SIGNATURE_FORMAT,
                "file": name,
                "matter": matter_id,
                "letter": letter_id,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "public_key": ctx.public_key,
                "signature": key.sign(data).hex(),
            }
            return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"

        html_sha, pdf_sha = hashlib.sha256(html).hexdigest(), hashlib.sha256(pdf).hexdigest()
        about = {
            "id": letter_id,
            "matter": matter_id,
            "kind": kind,
            "stage": ctx.stage,
            "subject_sha256": subject,
            "issued_at": format_time(ctx.issued_at),
            "issued_by": actor,
            "html_sha256": html_sha,
            "pdf_sha256": pdf_sha,
            "public_key": ctx.public_key,
        }
        files = {
            "letter.html": html,
            "letter.pdf": pdf,
            "letter.html.sig": signature("letter.html", html),
            "letter.pdf.sig": signature("letter.pdf", pdf),
            "letter.json": json.dumps(about, indent=2, sort_keys=True).encode() + b"\n",
        }
        directory = f"{LETTERS_DIR}/{letter_id}"
        # Files first: a crash before the commit leaves a folder no row names.
        await asyncio.to_thread(_write_letter, self._dir / directory, files)
        row = rows.LetterRow(
            letter_id,
            matter_id,
            kind,
            ctx.stage,
            subject,
            directory,
            html_sha,
            pdf_sha,
            ctx.issued_at,
            actor,
        )
        matter = await self.show(matter_id)
        txn = LegalTxn()
        txn.steps.append(rows.add_letter(row))
        self._log(
            txn,
            EventType.LEGAL_LETTER_ISSUED,
            actor,
            matter.request,
            matter_id,
            details=(("letter", letter_id), ("kind", kind), ("sha256", pdf_sha)),
        )
        await self._commit(txn)
        return LetterInfo(
            letter_id, kind, ctx.stage, ctx.issued_at, actor, html_sha, pdf_sha, directory
        )

    async def letter_file(self, matter_id: str, letter_id: str, name: str) -> bytes:
        """One file of a letter kept with the matter (LETTER_FILES)."""
        if name not in LETTER_FILES:
            raise InvalidInput(f"a letter's files are {', '.join(LETTER_FILES)}")
        for letter in (await self.matter_file(matter_id)).letters:
            if letter.id == letter_id:
                return await asyncio.to_thread((self._dir / letter.directory / name).read_bytes)
        raise NotFound(f"matter {matter_id} has no letter {letter_id}")

    def letter_path(self, letter: LetterInfo) -> Path:
        return self._dir / letter.directory
