"""Server-rendered pages: the Jinja2 environment, the site stylesheet and the headers
every page is sent with.

Pages need no script and load nothing from elsewhere, so the Content-Security-Policy
forbids both. Templates and the stylesheet are read once, when the application is
built, never while serving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse, Response

from letterlock.units import human_size

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
REPORT_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
"""The transparency report carries its own inline stylesheet (it is also a standalone,
printable file); it still runs no script."""

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

COUNTRY_NAMES = {
    "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BG": "Bulgaria", "BR": "Brazil",
    "CA": "Canada", "CH": "Switzerland", "CY": "Cyprus", "CZ": "Czechia", "DE": "Germany",
    "DK": "Denmark", "EE": "Estonia", "ES": "Spain", "FI": "Finland", "FR": "France",
    "GB": "the United Kingdom", "GR": "Greece", "HR": "Croatia", "HU": "Hungary",
    "IE": "Ireland", "IN": "India", "IS": "Iceland", "IT": "Italy", "JP": "Japan",
    "LI": "Liechtenstein", "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia",
    "MT": "Malta", "NL": "the Netherlands", "NO": "Norway", "NZ": "New Zealand",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SE": "Sweden", "SG": "Singapore",
    "SI": "Slovenia", "SK": "Slovakia", "UK": "the United Kingdom",
    "US": "the United States",
}


def country_name(code: str) -> str:
    """``IE`` -> ``Ireland``; an unlisted code is shown as itself."""
    return COUNTRY_NAMES.get(code.upper(), code.upper())


def when(text: str) -> str:
    """An ISO 8601 UTC time as people read it: ``28 November 2026, 03:16 UTC``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def page_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    return {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


class PageRenderer:
    """Renders the templates under ``http/templates`` and serves ``http/static``."""

    def __init__(self, templates: Path = TEMPLATES, static: Path = STATIC) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            auto_reload=False, cache_size=-1)
        self._env.filters["country"] = country_name
        self._env.filters["filesize"] = human_size
        self._env.filters["when"] = when
        # Compile every template now: the event loop never touches the disk for a page.
        for name in self._env.list_templates(extensions=["html"]):
            self._env.get_template(name)
        self._static: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(static.iterdir()):
            kind = STATIC_TYPES.get(path.suffix)
            if kind is not None and path.is_file():
                data = path.read_bytes()
                self._static[path.name] = (data, kind, hashlib.sha256(data).hexdigest()[:16])
        self._env.globals["static_version"] = {n: v[2] for n, v in self._static.items()}

    def html(self, template: str, context: Mapping[str, Any], *, status: int = 200,
             headers: Mapping[str, str] | None = None) -> HTMLResponse:
        body = self._env.get_template(template).render(**context)
        return HTMLResponse(body, status_code=status,
                            headers={**page_headers(), **(headers or {})})

    def static(self, name: str) -> Response | None:
        """A static file by name, or None if there is none."""
        found = self._static.get(name)
        if found is None:
            return None
        data, kind, version = found
        return Response(data, media_type=kind,
                        headers={"Cache-Control": "public, max-age=86400",
                                 "ETag": f'"{version}"'})
