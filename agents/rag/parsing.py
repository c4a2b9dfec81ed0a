"""A document's bytes and media type -> its title and sections (heading paths, paragraphs).

Pure: no I/O. Markdown goes through markdown-it-py's token stream (headings become the path of
the sections under them), HTML through BeautifulSoup (scripts, styles and the like dropped,
``h1``-``h6`` as sections), PDF through pypdf (one section per page), plain text as it is. A
JSON-lines collection (the shipped ``agents/data/kb/docs.jsonl`` and ``faq.jsonl``) is one
document per row: :func:`split_collection` gives the rows, each published as its own document
(media type :data:`ROW`) that keeps the row's id, since the eval set and citations use them.

Poison raises a non-retryable error whose message is the reason, so the chunk stage
dead-letters the document with it and goes on::

    UnreadableDocument (streams.PermanentError)   unreadable_document
    ├── BinaryDocument       NUL bytes, or text that is not UTF-8         binary_document
    ├── EmptyDocument        no text left after parsing                   empty_document
    ├── DocumentTooLarge     more bytes or characters than the limits     document_too_large
    └── UnsupportedMedia     a media type no parser reads                 unsupported_media_type
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from bs4 import BeautifulSoup
from bs4.element import Comment as HtmlComment
from bs4.element import NavigableString, Tag
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from streams import PermanentError

__all__ = [
    "COLLECTION",
    "HTML",
    "MARKDOWN",
    "PDF",
    "PLAIN",
    "ROW",
    "BinaryDocument",
    "CollectionRow",
    "DocumentTooLarge",
    "EmptyDocument",
    "Limits",
    "ParsedDocument",
    "Section",
    "UnreadableDocument",
    "UnsupportedMedia",
    "media_type_for",
    "normalise_media_type",
    "parse",
    "split_collection",
]

MARKDOWN = "text/markdown"
HTML = "text/html"
PLAIN = "text/plain"
PDF = "application/pdf"
ROW = "application/json"  # one row of a JSON-lines collection
COLLECTION = "application/x-ndjson"  # a JSON-lines collection: split into rows before publishing

_SUFFIXES = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".txt": PLAIN,
    ".text": PLAIN,
    ".pdf": PDF,
    ".jsonl": COLLECTION,
    ".ndjson": COLLECTION,
}
_ALIASES = {"text/x-markdown": MARKDOWN, "application/xhtml+xml": HTML, "application/jsonl": COLLECTION}

log = logging.getLogger(__name__)


class UnreadableDocument(PermanentError):
    """A document no retry will make readable; the message says why."""

    dead_letter_reason = "unreadable_document"


class BinaryDocument(UnreadableDocument):
    dead_letter_reason = "binary_document"


class EmptyDocument(UnreadableDocument):
    dead_letter_reason = "empty_document"


class DocumentTooLarge(UnreadableDocument):
    dead_letter_reason = "document_too_large"


class UnsupportedMedia(UnreadableDocument):
    dead_letter_reason = "unsupported_media_type"


@dataclass(frozen=True)
class Limits:
    """What one document may hold; above either limit it is refused (too large to chunk)."""

    max_bytes: int = 4 * 1024 * 1024
    max_chars: int = 1_000_000  # of text after parsing


@dataclass(frozen=True)
class Section:
    """The paragraphs under one heading path (``()``: before the first heading)."""

    path: tuple[str, ...]
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(p for s in self.sections for p in s.paragraphs)


@dataclass(frozen=True)
class CollectionRow:
    """One row of a JSON-lines collection as a document of its own (media type :data:`ROW`)."""

    document_id: str
    title: str
    url: str
    content: bytes  # the row as canonical JSON: reformatting the file changes no hash
    has_body: bool = True  # it has a 'text' or an 'answer' field (empty or not)


def media_type_for(name: str) -> str | None:
    """The media type of a file or URL path by its suffix (None: not one podium reads)."""
    return _SUFFIXES.get(posixpath.splitext(name.lower())[1])


def normalise_media_type(media_type: str) -> str:
    """``Text/HTML; charset=utf-8`` -> ``text/html``."""
    bare = media_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def parse(content: bytes, media_type: str, *, title: str = "", limits: Limits = Limits()) -> ParsedDocument:
    """The document's title (``title`` if given, else its own: a first heading, ``<title>``,
    the PDF's metadata) and sections. Raises an :class:`UnreadableDocument` for poison."""
    kind = normalise_media_type(media_type)
    if len(content) > limits.max_bytes:
        raise DocumentTooLarge(f"the document is {len(content)} bytes; at most {limits.max_bytes} are read")
    if kind == PDF:
        found_title, sections = _pdf(content)
    elif kind == HTML:
        found_title, sections = _html(_text_bytes(content, kind))
    elif kind == MARKDOWN:
        found_title, sections = _markdown(_decoded(content, kind))
    elif kind == PLAIN:
        found_title, sections = "", [Section((), tuple(_paragraphs(_decoded(content, kind))))]
    elif kind == ROW:
        found_title, sections = _row(_decoded(content, kind))
    elif kind == COLLECTION:
        raise UnsupportedMedia("a JSON-lines collection is split into one document per row before publishing")
    else:
        raise UnsupportedMedia(f"no parser reads {media_type!r}")
    kept = tuple(s for s in sections if s.paragraphs)
    chars = sum(len(p) for s in kept for p in s.paragraphs)
    if not chars:
        raise EmptyDocument(f"no text after parsing the {kind} document")
    if chars > limits.max_chars:
        raise DocumentTooLarge(f"the document has {chars} characters of text; at most {limits.max_chars}")
    doc_title = title.strip() or found_title
    return ParsedDocument(doc_title, tuple(_without_title(s, doc_title) for s in kept))


def split_collection(content: bytes) -> tuple[list[CollectionRow], list[str]]:
    """A JSON-lines collection's rows (``id``, ``title`` or ``question``, ``text`` or
    ``answer``, ``url``) and the problems of the lines that cannot be documents (no id, not an
    object), each naming its line. A row with an id but no text is still a row: the chunk stage
    dead-letters it with the reason."""
    text = _decoded(content, COLLECTION)
    rows: list[CollectionRow] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        row_id = row.get("id")
        if not isinstance(row_id, str) or not row_id.strip():
            problems.append(f"line {number}: no string 'id'")
            continue
        if row_id in seen:
            problems.append(f"line {number}: id {row_id!r} appears twice")
            continue
        seen.add(row_id)
        canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        has_body = "text" in row or "answer" in row
        rows.append(
            CollectionRow(row_id, _row_title(row), _string(row.get("url")), canonical.encode(), has_body)
        )
    return rows, problems


# -- text ---------------------------------------------------------------------------------
def _text_bytes(content: bytes, kind: str) -> bytes:
    if b"\x00" in content:
        raise BinaryDocument(f"the {kind} document holds NUL bytes: binary data, not text")
    return content


def _decoded(content: bytes, kind: str) -> str:
    _text_bytes(content, kind)
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BinaryDocument(
            f"the {kind} document is not UTF-8 text (byte {exc.start} cannot be read)"
        ) from None


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> Iterator[str]:
    """Blank-line separated paragraphs, inner whitespace runs squeezed."""
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        squeezed = _squeeze(block)
        if squeezed:
            yield squeezed


def _without_title(section: Section, title: str) -> Section:
    """A document titled by its first heading does not repeat it in every section's path."""
    if title and section.path[:1] == (title,):
        return Section(section.path[1:], section.paragraphs)
    return section


@dataclass
class _Sections:
    """Sections as headings and blocks arrive in document order."""

    path: list[tuple[int, str]] = field(default_factory=list)  # (level, heading)
    done: list[Section] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    first_heading: str = ""

    def heading(self, level: int, text: str) -> None:
        self.flush()
        text = _squeeze(text)
        if not text:
            return
        self.first_heading = self.first_heading or text
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, text))

    def block(self, text: str) -> None:
        if text.strip():
            self.current.append(text.strip())

    def flush(self) -> None:
        if self.current:
            self.done.append(Section(tuple(h for _, h in self.path), tuple(self.current)))
            self.current = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.done


# -- Markdown -----------------------------------------------------------------------------
_MARKDOWN = MarkdownIt("commonmark").enable("table")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def _markdown(text: str) -> tuple[str, list[Section]]:
    title = ""
    if match := _FRONT_MATTER.match(text):
        try:
            meta = yaml.safe_load(match["yaml"])
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict):
            title = _string(meta.get("title"))
            text = text[match.end() :]
    sections = _Sections()
    tokens = _MARKDOWN.parse(text)
    index = 0
    row: list[str] = []
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open":
            sections.heading(int(token.tag[1:]), _inline_text(tokens[index + 1]))
            index += 3
            continue
        if token.type == "inline":
            inside = tokens[index - 1].type if index else ""
            if inside in ("th_open", "td_open"):
                row.append(_inline_text(token))
            else:
                bullet = "- " if _in_list(tokens, index) else ""
                sections.block(bullet + _squeeze(_inline_text(token)))
        elif token.type in ("fence", "code_block"):
            sections.block(token.content.rstrip())
        elif token.type == "tr_close":
            sections.block(" | ".join(_squeeze(c) for c in row))
            row = []
        index += 1
    return title or sections.first_heading, _joined_lists(sections.finish())


def _in_list(tokens: Sequence[Token], index: int) -> bool:
    depth = 0
    for token in reversed(tokens[:index]):
        if token.type == "list_item_close":
            depth += 1
        elif token.type == "list_item_open":
            if depth == 0:
                return True
            depth -= 1
        elif token.level == 0 and token.nesting == 1:
            return False
    return False


def _joined_lists(sections: list[Section]) -> list[Section]:
    """Consecutive list items make one paragraph (a list is read as one block)."""
    joined = []
    for section in sections:
        paragraphs: list[str] = []
        for paragraph in section.paragraphs:
            if paragraph.startswith("- ") and paragraphs and paragraphs[-1].startswith("- "):
                paragraphs[-1] += "\n" + paragraph
            else:
                paragraphs.append(paragraph)
        joined.append(Section(section.path, tuple(paragraphs)))
    return joined


def _inline_text(token: Token) -> str:
    """The text a reader sees in an inline token: markup dropped, links keep their words."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


# -- HTML ---------------------------------------------------------------------------------
_DROPPED = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object", "nav", "form")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "header", "hr", "li", "main",
    "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip


def _html(content: bytes) -> tuple[str, list[Section]]:
    soup = BeautifulSoup(content, "html.parser")
    head_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROPPED):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, HtmlComment)):
        comment.extract()
    sections = _Sections()
    inline: list[str] = []

    def flush() -> None:
        sections.block(_squeeze("".join(inline)))
        inline.clear()

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                inline.append(str(child))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in _HEADINGS:
                    flush()
                    sections.heading(_HEADINGS[name], child.get_text(" "))
                elif name == "pre":
                    flush()
                    sections.block(child.get_text())
                elif name == "br":
                    inline.append(" ")
                elif name == "tr":  # a table row reads as one line, as in Markdown
                    flush()
                    cells = child.find_all(["td", "th"])
                    sections.block(" | ".join(_squeeze(c.get_text(" ")) for c in cells))
                elif name == "li" and child.find(list(_HEADINGS)) is None:
                    flush()
                    inline.append("- ")
                    walk(child)
                    flush()
                elif name in _BLOCKS or child.find(list(_HEADINGS) + list(_BLOCKS)) is not None:
                    flush()
                    walk(child)
                    flush()
                else:
                    inline.append(child.get_text())
        if node.name in _BLOCKS:
            flush()

    walk(soup.body or soup)
    flush()
    return head_title or sections.first_heading, _joined_lists(sections.finish())


# -- PDF ----------------------------------------------------------------------------------
def _pdf(content: bytes) -> tuple[str, list[Section]]:
    if not content.startswith(b"%PDF-"):
        raise BinaryDocument("not a PDF: the bytes do not start with %PDF-")
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("the PDF is encrypted with a password")
        meta = reader.metadata
        title = _string(meta.title) if meta is not None else ""
        sections = [
            Section((f"page {number}",), tuple(_pdf_paragraphs(page.extract_text() or "")))
            for number, page in enumerate(reader.pages, start=1)
        ]
    except UnreadableDocument:
        raise
    # pypdf raises its own errors and, on damaged files, plain ones from deep inside.
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise UnreadableDocument(f"the PDF cannot be read: {exc}") from exc
    return title, sections


def _pdf_paragraphs(text: str) -> Iterator[str]:
    """A page's text: blank lines separate paragraphs; a line ending a sentence ends one too."""
    block: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if not stripped:
            if block:
                yield _squeeze(" ".join(block))
                block = []
            continue
        block.append(stripped)
        if stripped.endswith((".", "!", "?", ":")) and sum(map(len, block)) > 200:
            yield _squeeze(" ".join(block))
            block = []
    if block:
        yield _squeeze(" ".join(block))


# -- JSON-lines rows ----------------------------------------------------------------------
def _string(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _row_title(row: dict[str, Any]) -> str:
    return _string(row.get("title")) or _string(row.get("question"))


def _row(text: str) -> tuple[str, list[Section]]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableDocument(f"the row is not JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise UnreadableDocument("the row is not a JSON object")
    body = _string(row.get("text")) or _string(row.get("answer"))
    return _row_title(row), [Section((), tuple(_paragraphs(body)))]
