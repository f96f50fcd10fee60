"""HTTP routes of the matter file (services/legal/matter_file.py, letters.py) on the
legal router (legal_api.py): case number, notes, originals, the export of a whole
matter, search, and the signed letters. Every role may read the file and search;
``legal`` and ``admin`` may change it, open originals and export. Opening an original
or exporting with the originals needs the matter-file passphrase in the body: it is
used for that request only, never kept."""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi import Request as HttpRequest
from fastapi.responses import Response

from letterlock.errors import LetterlockError
from letterlock.http.errors import status_for
from letterlock.http.legal_schema import (
    ATTACHMENT_BODY,
    Attachment,
    LetterList,
    MatterFile,
    MatterList,
    Note,
    model_response,
)
from letterlock.services.legal.letter_text import LETTER_KINDS
from letterlock.services.legal.letters import LETTER_FILES
from letterlock.services.legal.matter_file import MAX_ATTACHMENT_BYTES, MatterQuery
from letterlock.services.legal.matters import LegalService

T = TypeVar("T")
_LETTER_TYPES = {
    "letter.html": "text/html",
    "letter.pdf": "application/pdf",
    "letter.html.sig": "application/json",
    "letter.pdf.sig": "application/json",
    "letter.json": "application/json",
}


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except LetterlockError as exc:
        raise HTTPException(status_for(exc), str(exc) or type(exc).__name__) from exc


async def _body(request: HttpRequest, limit: int) -> bytes:
    """The request body, refused (413) beyond ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the attachment is larger than {limit} bytes")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the attachment is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _download(data: bytes, media_type: str, name: str, sha256: str) -> Response:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name) or "file"
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-SHA256": sha256,
            "Cache-Control": "no-store",
        },
    )


def add_matter_file_routes(
    router: APIRouter,
    service: Callable[[], LegalService],
    operator: Callable[..., Any],
    acting: Callable[[Any], str],
) -> None:
    Svc = Annotated[LegalService, Depends(service)]
    Who = Annotated[Any, Depends(operator)]

    @router.get("/search", response_model=None, responses=model_response(MatterList))
    async def search_matters(
        svc: Svc,
        who: Who,
        case_number: str | None = None,
        target: str | None = None,
        authority: str | None = None,
        instrument: str | None = None,
        state: str | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """Matters matching every term given (case number, target, authority,
        instrument, state, text of notes; text terms ignore case)."""
        query = MatterQuery(case_number, target, authority, instrument, state, text)
        return [m.to_json() for m in await _call(lambda: svc.search(query))]

    @router.get(
        "/matters/{matter_id}/file", response_model=None, responses=model_response(MatterFile)
    )
    async def matter_file(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        """Case number, notes, originals (never their content) and letters."""
        return (await _call(lambda: svc.matter_file(matter_id))).to_json()

    @router.put(
        "/matters/{matter_id}/case-number",
        response_model=None,
        responses=model_response(MatterFile),
    )
    async def set_case_number(
        svc: Svc,
        who: Who,
        matter_id: str,
        case_number: Annotated[str, Body(embed=True)],
    ) -> dict[str, Any]:
        actor = acting(who)
        record = await _call(lambda: svc.set_case_number(matter_id, actor, case_number))
        return record.to_json()

    @router.post(
        "/matters/{matter_id}/notes",
        status_code=201,
        response_model=None,
        responses=model_response(Note, 201),
    )
    async def add_note(
        svc: Svc, who: Who, matter_id: str, text: Annotated[str, Body(embed=True)]
    ) -> dict[str, Any]:
        """Append a note (``{"text": TEXT}``); notes are never changed or removed."""
        actor = acting(who)
        return (await _call(lambda: svc.add_note(matter_id, actor, text))).to_json()

    @router.post(
        "/matters/{matter_id}/attachments",
        status_code=201,
        response_model=None,
        responses={
            **model_response(Attachment, 201),
            413: {"description": f"Over {MAX_ATTACHMENT_BYTES} bytes."},
        },
        openapi_extra=ATTACHMENT_BODY,
    )
    async def attach(
        svc: Svc, who: Who, matter_id: str, name: str, request: HttpRequest
    ) -> dict[str, Any]:
        """File an original: the body is its bytes (``?name=FILE``; Content-Type
        recorded as its media type, sniffed when absent or octet-stream). Sealed to
        the matter-file key; its SHA-256 is recorded and logged."""
        actor = acting(who)
        data = await _body(request, MAX_ATTACHMENT_BYTES)
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        media = None if kind in ("", "application/octet-stream") else kind
        attachment = await _call(lambda: svc.attach(matter_id, actor, data, name, media))
        return attachment.to_json()

    @router.post(
        "/matters/{matter_id}/attachments/{attachment_id}/open",
        response_class=Response,
        responses={
            200: {
                "description": "The original's bytes (checked against "
                "its SHA-256, sent in X-Content-SHA256).",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def open_attachment(
        svc: Svc,
        who: Who,
        matter_id: str,
        attachment_id: str,
        passphrase: Annotated[str, Body(embed=True)],
    ) -> Response:
        """Open an original with the matter-file passphrase (``{"passphrase": ...}``);
        a changed or swapped file is refused; the opening is logged."""
        actor = acting(who)
        attachment, data = await _call(
            lambda: svc.open_attachment(matter_id, attachment_id, actor, passphrase)
        )
        return _download(data, attachment.media_type, attachment.name, attachment.sha256)

    @router.post(
        "/matters/{matter_id}/export",
        response_class=Response,
        responses={
            200: {
                "description": "The signed zip (docs/legal-formats.md#matter-export).",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def export(
        svc: Svc,
        who: Who,
        matter_id: str,
        passphrase: Annotated[str | None, Body(embed=True)] = None,
    ) -> Response:
        """The whole matter as one signed zip; with ``{"passphrase": ...}`` the
        originals are in it opened, else sealed."""
        actor = acting(who)
        result = await _call(lambda: svc.export(matter_id, actor, passphrase))
        return _download(result.data, "application/zip", result.name, result.sha256)

    @router.post(
        "/matters/{matter_id}/letters",
        status_code=201,
        response_model=None,
        responses=model_response(LetterList, 201),
    )
    async def issue_letters(
        svc: Svc,
        who: Who,
        matter_id: str,
        kinds: Annotated[list[str] | None, Body(embed=True)] = None,
    ) -> list[dict[str, Any]]:
        """Write the signed letters for the matter's current decision (``{"kinds":
        [...]}`` narrows them: response, production-certificate)."""
        actor = acting(who)
        chosen = tuple(kinds) if kinds else LETTER_KINDS
        issued = await _call(lambda: svc.issue_letters(matter_id, actor, chosen))
        return [x.to_json() for x in issued]

    @router.get(
        "/matters/{matter_id}/letters/{letter_id}/{name}",
        response_class=Response,
        responses={
            200: {
                "description": "One file of the letter: " + ", ".join(LETTER_FILES) + ".",
                "content": {t: {} for t in set(_LETTER_TYPES.values())},
            }
        },
    )
    async def letter_file(
        svc: Svc, who: Who, matter_id: str, letter_id: str, name: str
    ) -> Response:
        data = await _call(lambda: svc.letter_file(matter_id, letter_id, name))
        return _download(data, _LETTER_TYPES[name], name, hashlib.sha256(data).hexdigest())
