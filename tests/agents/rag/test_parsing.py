"""Documents to titles and sections, and poison to reasons, without Kafka."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agents.rag.parsing import (
    COLLECTION,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    ROW,
    BinaryDocument,
    DocumentTooLarge,
    EmptyDocument,
    Limits,
    UnreadableDocument,
    UnsupportedMedia,
    media_type_for,
    parse,
    split_collection,
)
from streams import PermanentError
from streams.errors import error_type, is_retryable
from tests.agents.rag.documents import GUIDE, PAGE, make_pdf

KB = Path(__file__).resolve().parents[3] / "agents" / "data" / "kb"


def test_markdown_headings_become_the_paths_of_the_sections_under_them() -> None:
    doc = parse(GUIDE.read_bytes(), MARKDOWN)
    assert doc.title == "Workspace guide"  # the first heading, not repeated in the paths
    assert [s.path for s in doc.sections] == [
        (),
        ("Inviting people",),
        ("Single sign-on",),
        ("Single sign-on", "Setting it up"),
    ]
    inviting = doc.sections[1].paragraphs
    assert inviting[0].startswith("Owners and admins invite people") and "\n" not in inviting[0]
    assert inviting[1] == "- Owners can invite admins and members.\n- Admins can invite members only."
    assert "#" not in doc.text


def test_markdown_front_matter_names_the_title_and_markup_is_dropped() -> None:
    text = b"---\ntitle: Release notes\n---\n# 2.0\n\nNow with **bold** and `code` and [links](https://x).\n"
    doc = parse(text, "text/markdown; charset=utf-8")
    assert doc.title == "Release notes"
    assert doc.sections[0].path == ("2.0",)
    assert doc.sections[0].paragraphs == ("Now with bold and code and links.",)


def test_html_drops_scripts_styles_and_navigation_and_keeps_headings_as_sections() -> None:
    doc = parse(PAGE.read_bytes(), HTML)
    assert doc.title == "Exporting your data"
    assert [s.path for s in doc.sections] == [(), ("Scheduled exports",)]
    assert doc.sections[0].paragraphs == (
        "Admins can export a workspace's projects as CSV or JSON from Settings > Export.",
    )
    assert doc.sections[1].paragraphs[1] == "- CSV: one file per project\n- JSON: one archive"
    for gone in ("track", "console", "font-family", "Home"):
        assert gone not in doc.text


def test_pdf_text_comes_page_by_page_with_the_metadata_title() -> None:
    pdf = make_pdf(
        [["Invoices are issued on the 1st.", "Pay within 30 days."], ["Refunds take 5 days."]], "Billing"
    )
    doc = parse(pdf, PDF)
    assert doc.title == "Billing"
    assert [s.path for s in doc.sections] == [("page 1",), ("page 2",)]
    assert "Invoices are issued on the 1st." in doc.sections[0].paragraphs[0]
    assert doc.sections[1].paragraphs == ("Refunds take 5 days.",)


def test_plain_text_is_split_into_paragraphs_and_a_given_title_wins() -> None:
    doc = parse(b"First  paragraph\nwraps here.\n\n\nSecond.\r\n", PLAIN, title="Notes")
    assert doc.title == "Notes"
    assert doc.sections[0].paragraphs == ("First paragraph wraps here.", "Second.")


def test_the_shipped_collections_split_into_rows_that_keep_their_ids() -> None:
    for name, title_field in (("docs.jsonl", "title"), ("faq.jsonl", "question")):
        raw = (KB / name).read_bytes()
        rows, problems = split_collection(raw)
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        assert problems == []
        assert [r.document_id for r in rows] == [line["id"] for line in lines]
        first = parse(rows[0].content, ROW)
        assert first.title == rows[0].title == lines[0][title_field]
        assert first.text == (lines[0].get("text") or lines[0]["answer"])
        assert rows[0].url == lines[0]["url"]
    # The row's bytes are canonical JSON: a reformatted file changes no hash.
    again, _ = split_collection(b'{ "url": "u",  "id": "a", "text": "t" }\n')
    assert again[0].content == b'{"id":"a","text":"t","url":"u"}'


def test_collection_lines_that_cannot_be_documents_are_named() -> None:
    raw = b'{"id": "a", "text": "x"}\nnot json\n[1]\n{"text": "no id"}\n{"id": "a", "text": "again"}\n\n'
    rows, problems = split_collection(raw)
    assert [r.document_id for r in rows] == ["a"]
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "twice" in problems[-1]


@pytest.mark.parametrize(
    ("content", "media_type", "error", "reason"),
    [
        (b"PK\x03\x04\x00\x00binary", MARKDOWN, BinaryDocument, "NUL bytes"),
        (b"caf\xe9 au lait", PLAIN, BinaryDocument, "not UTF-8"),
        (os.urandom(64).replace(b"%", b"x"), PDF, BinaryDocument, "not a PDF"),
        (b"%PDF-1.7\nbroken", PDF, UnreadableDocument, "cannot be read"),
        (b"", PLAIN, EmptyDocument, "no text"),
        (b"# Only a heading\n\n   \n", MARKDOWN, EmptyDocument, "no text"),
        (b"<html><script>x()</script></html>", HTML, EmptyDocument, "no text"),
        (b'{"id": "faq-x", "question": "Why?"}', ROW, EmptyDocument, "no text"),
        (b"x" * 2000, PLAIN, DocumentTooLarge, "2000 bytes"),
        (b"a", "image/png", UnsupportedMedia, "image/png"),
        (b"{}", COLLECTION, UnsupportedMedia, "one document per row"),
    ],
)
def test_poison_raises_a_permanent_error_whose_message_is_the_reason(
    content: bytes, media_type: str, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as caught:
        parse(content, media_type, limits=Limits(max_bytes=1000))
    assert isinstance(caught.value, PermanentError) and not is_retryable(caught.value)
    assert reason in str(caught.value)
    assert error_type(caught.value) in {
        "binary_document",
        "unreadable_document",
        "empty_document",
        "document_too_large",
        "unsupported_media_type",
    }


def test_a_pdf_with_no_text_is_empty_and_too_much_text_is_too_large() -> None:
    with pytest.raises(EmptyDocument):
        parse(make_pdf([[]]), PDF)
    with pytest.raises(DocumentTooLarge, match="characters"):
        parse(b"word " * 100, PLAIN, limits=Limits(max_chars=100))


def test_media_types_by_suffix() -> None:
    assert [media_type_for(n) for n in ("a/B.MD", "x.htm", "n.txt", "r.pdf", "kb.jsonl", "p.png")] == [
        MARKDOWN,
        HTML,
        PLAIN,
        PDF,
        COLLECTION,
        None,
    ]
