"""A small PDF 1.4 writer for text documents (the letters to issuing authorities).

No PDF library is among the project's dependencies, and a letter needs little: A4
pages, the standard Helvetica fonts (every reader has them, nothing is embedded),
paragraphs wrapped to the text width, headings, bullet items, a footer with the page
number. Bytes in, bytes out, no I/O; the output is deterministic for a given input.

Text is written in WinAnsiEncoding (Windows-1252); a character outside it is shown
as ``?``. Lines are wrapped with Helvetica's glyph widths (the AFM metrics of the
standard font, in 1/1000 em); a word longer than a line is cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 64
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
FOOTER_Y = 36

# Helvetica's advance widths for the printable ASCII characters 32..126.
_ASCII_WIDTHS = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
)  # fmt: skip
_OTHER_WIDTH = 556
_BOLD_FACTOR = 1.08  # Helvetica-Bold is at most this much wider, for wrapping


@dataclass(frozen=True)
class Block:
    """One piece of a document: ``title``, ``heading``, ``para``, ``item`` (a
    bullet point), ``meta`` (a short line, no space after) or ``small``."""

    kind: str
    text: str


_STYLES = {  # kind -> (font, size, leading, space after, indent)
    "title": ("F2", 15.0, 19.0, 10.0, 0),
    "heading": ("F2", 11.5, 15.0, 4.0, 0),
    "para": ("F1", 10.0, 13.5, 7.0, 0),
    "item": ("F1", 10.0, 13.5, 3.0, 14),
    "meta": ("F1", 10.0, 13.5, 0.0, 0),
    "small": ("F1", 8.5, 11.0, 5.0, 0),
}


def _encode(text: str) -> bytes:
    return text.encode("cp1252", errors="replace")


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in points of ``text`` set in Helvetica (Bold) at ``size``."""
    units = 0
    for byte in _encode(text):
        units += _ASCII_WIDTHS[byte - 32] if 32 <= byte <= 126 else _OTHER_WIDTH
    return units * size / 1000 * (_BOLD_FACTOR if bold else 1.0)


def wrap(text: str, size: float, width: float, bold: bool = False) -> list[str]:
    """Greedy line breaking at spaces; explicit newlines are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, size, bold) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while text_width(word, size, bold) > width:  # cut a word longer than a line
                cut = len(word)
                while cut > 1 and text_width(word[:cut], size, bold) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _literal(text: str) -> bytes:
    """A PDF string literal: backslash, parentheses and bytes outside ASCII escaped."""
    out = bytearray(b"(")
    for byte in _encode(text):
        if byte in b"\\()":
            out += b"\\" + bytes([byte])
        elif 32 <= byte <= 126:
            out.append(byte)
        else:
            out += f"\\{byte:03o}".encode("ascii")
    return bytes(out + b")")


def _num(value: float) -> bytes:
    return (f"{value:.2f}".rstrip("0").rstrip(".")).encode("ascii")


@dataclass(frozen=True)
class _Line:
    font: str
    size: float
    x: float
    text: str
    bullet: bool


def _layout(blocks: Sequence[Block]) -> list[list[tuple[float, _Line]]]:
    """Lines placed on pages: each page a list of (baseline y, line)."""
    pages: list[list[tuple[float, _Line]]] = [[]]
    top, bottom = float(PAGE_HEIGHT - MARGIN), float(MARGIN + 10)
    y = top
    for block in blocks:
        font, size, leading, after, indent = _STYLES.get(block.kind, _STYLES["para"])
        lines = wrap(block.text, size, TEXT_WIDTH - indent, bold=font == "F2")
        # Keep a heading with the first lines of what follows it.
        need = leading * (3 if block.kind == "heading" else 1)
        for i, text in enumerate(lines):
            if y - (need if i == 0 else leading) < bottom and pages[-1]:
                pages.append([])
                y = top
            y -= leading
            pages[-1].append(
                (y, _Line(font, size, MARGIN + indent, text, block.kind == "item" and i == 0))
            )
        y -= after
    return pages


def _content(page: list[tuple[float, _Line]], number: int, count: int, footer: str) -> bytes:
    out = [b"BT"]
    for y, line in page:
        out.append(b"/%s %s Tf" % (line.font.encode(), _num(line.size)))
        if line.bullet:
            out.append(b"1 0 0 1 %s %s Tm %s Tj" % (_num(line.x - 10), _num(y), _literal("-")))
        out.append(b"1 0 0 1 %s %s Tm %s Tj" % (_num(line.x), _num(y), _literal(line.text)))
    label = f"{footer}  -  page {number} of {count}" if footer else f"Page {number} of {count}"
    out.append(b"/F1 8 Tf 1 0 0 1 %s %s Tm %s Tj" % (_num(MARGIN), _num(FOOTER_Y), _literal(label)))
    out.append(b"ET")
    return b"\n".join(out) + b"\n"


def _date(at: datetime) -> str:
    return at.strftime("D:%Y%m%d%H%M%SZ")


def render_pdf(
    blocks: Sequence[Block], *, title: str, footer: str = "", created: datetime | None = None
) -> bytes:
    """The document as PDF 1.4 bytes."""
    pages = _layout(blocks)
    objects: list[bytes] = []  # object n is objects[n - 1]
    count = len(pages)
    first_page = 6
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    for name in (b"Helvetica", b"Helvetica-Bold"):
        objects.append(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /" + name + b" /Encoding /WinAnsiEncoding >>"
        )
    info = b"<< /Title %s /Producer (letterlock)" % _literal(title)
    if created is not None:
        info += b" /CreationDate %s" % _literal(_date(created))
    objects.append(info + b" >>")
    for i, page in enumerate(pages):
        stream = _content(page, i + 1, count, footer)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font "
            b"<< /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
            % (PAGE_WIDTH, PAGE_HEIGHT, first_page + 2 * i + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
