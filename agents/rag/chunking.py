"""A parsed document -> chunks: by headings, then paragraphs, with a little overlap.

Pure: no I/O. Each section (one heading path) is cut on its own, so no chunk spans two
headings. A section's paragraphs are packed in order into chunks: a chunk closes as soon as it
holds ``min_chars`` (about 800), and a paragraph that would take it past ``max_chars`` (1200)
starts the next one; a paragraph longer than that alone is cut at sentence ends (then words).
Every chunk after a section's first begins with the tail of the previous chunk's last paragraph
(at most ``overlap_chars``, from a word start), so a sentence cut at a boundary keeps its lead-in.
The overlap is not counted in the packing, so it moves no boundary.

A chunk's id is content-addressed: ``<document id>#<16 hex>`` of a hash of the document id,
the chunk's title (the document's title and the heading path) and its text. An unchanged chunk
keeps its id across versions of the document, and with it the vector already paid for; an
edited paragraph changes the id of the chunk it is in (and of the next chunk, when it is the
last paragraph of its chunk and so the next one's overlap). The same title and text twice in
one document get ``.2``, ``.3`` appended, so ids are unique within a document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from agents.rag.parsing import ParsedDocument, Section

__all__ = ["TITLE_SEPARATOR", "ChunkingPolicy", "TextChunk", "chunk_document", "chunk_title"]

TITLE_SEPARATOR = " > "
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ChunkingPolicy:
    min_chars: int = 800
    max_chars: int = 1200
    overlap_chars: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.min_chars <= self.max_chars:
            raise ValueError("chunking needs 0 < min_chars <= max_chars")
        if not 0 <= self.overlap_chars < self.min_chars:
            raise ValueError("chunking needs 0 <= overlap_chars < min_chars")


@dataclass(frozen=True)
class TextChunk:
    id: str
    document_id: str
    path: tuple[str, ...]  # the heading path of its section
    title: str  # document title, then TITLE_SEPARATOR and the heading path
    text: str  # overlap included: what is embedded and shown


def chunk_title(document_title: str, path: tuple[str, ...]) -> str:
    return TITLE_SEPARATOR.join(part for part in (document_title, *path) if part)


def chunk_document(
    document_id: str, document: ParsedDocument, policy: ChunkingPolicy = ChunkingPolicy()
) -> list[TextChunk]:
    """Every chunk of ``document`` in reading order, with ids unique within it."""
    chunks: list[TextChunk] = []
    seen: dict[str, int] = {}
    for section in document.sections:
        title = chunk_title(document.title, section.path)
        for text in _section_texts(section, policy):
            base = _chunk_id(document_id, title, text)
            seen[base] = seen.get(base, 0) + 1
            chunk_id = base if seen[base] == 1 else f"{base}.{seen[base]}"
            chunks.append(TextChunk(chunk_id, document_id, section.path, title, text))
    return chunks


def _chunk_id(document_id: str, title: str, text: str) -> str:
    digest = hashlib.sha256()
    for part in (document_id, title, text):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big"))  # framed: no two splits hash alike
        digest.update(encoded)
    return f"{document_id}#{digest.hexdigest()[:16]}"


def _section_texts(section: Section, policy: ChunkingPolicy) -> Iterator[str]:
    overlap = ""
    for group in _packed(section.paragraphs, policy):
        yield "\n\n".join([overlap, *group] if overlap else group)
        overlap = _tail(group[-1], policy.overlap_chars)


def _packed(paragraphs: tuple[str, ...], policy: ChunkingPolicy) -> Iterator[list[str]]:
    group: list[str] = []
    size = 0
    for piece in (p for paragraph in paragraphs for p in _pieces(paragraph, policy.max_chars)):
        if group and size + 2 + len(piece) > policy.max_chars:
            yield group
            group, size = [], 0
        size += len(piece) + (2 if group else 0)
        group.append(piece)
        if size >= policy.min_chars:
            yield group
            group, size = [], 0
    if group:
        yield group


def _pieces(paragraph: str, max_chars: int) -> Iterator[str]:
    """A paragraph, cut at sentence ends (then at spaces, then anywhere) to at most max_chars."""
    if len(paragraph) <= max_chars:
        yield paragraph
        return
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        for part in _words(sentence, max_chars):
            if current and len(current) + 1 + len(part) > max_chars:
                yield current
                current = ""
            current = f"{current} {part}" if current else part
    if current:
        yield current


def _words(sentence: str, max_chars: int) -> Iterator[str]:
    if len(sentence) <= max_chars:
        yield sentence
        return
    current = ""
    for word in sentence.split(" "):
        while len(word) > max_chars:  # one "word" longer than a chunk: cut it
            if current:
                yield current
                current = ""
            yield word[:max_chars]
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            yield current
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        yield current


def _tail(paragraph: str, limit: int) -> str:
    """At most ``limit`` characters from the end of ``paragraph``, starting at a word."""
    if limit == 0:
        return ""
    if len(paragraph) <= limit:
        return paragraph
    tail = paragraph[-limit:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail
