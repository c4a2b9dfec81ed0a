"""Documents for the knowledge-base tests: the checked-in Markdown and HTML fixtures, and a PDF
written here with pypdf (no hand-made PDF bytes)."""

from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

DATA = Path(__file__).parent / "data"
GUIDE = DATA / "guide.md"
PAGE = DATA / "page.html"


def _literal(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def make_pdf(pages: list[list[str]], title: str = "") -> bytes:
    """A PDF whose pages show these lines in Helvetica (text pypdf can extract again)."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        shown = b" 0 -16 Td ".join(b"(" + _literal(line) + b") Tj" for line in lines)
        stream = DecodedStreamObject()
        stream.set_data(b"BT /F1 11 Tf 72 720 Td " + shown + b" ET")
        page.replace_contents(stream)
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
