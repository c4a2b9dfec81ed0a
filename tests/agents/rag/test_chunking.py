"""Chunks by headings and paragraphs, with overlap and content-addressed ids, without Kafka."""

from __future__ import annotations

import itertools

import pytest

from agents.rag.chunking import ChunkingPolicy, chunk_document
from agents.rag.parsing import MARKDOWN, ParsedDocument, Section, parse
from tests.agents.rag.documents import GUIDE


def _paragraph(n: int, words: int = 40) -> str:
    return " ".join(f"p{n}w{i}" for i in range(words)) + "."  # about 230 characters


def _long_doc(edit: int | None = None) -> ParsedDocument:
    paragraphs = [_paragraph(n) for n in range(12)]
    if edit is not None:
        paragraphs[edit] = paragraphs[edit].replace("w3 ", "w3 edited ")
    return ParsedDocument("Handbook", (Section(("Billing", "Invoices"), tuple(paragraphs)),))


def test_the_same_document_gives_the_same_chunks_and_ids() -> None:
    first = chunk_document("guide.md", parse(GUIDE.read_bytes(), MARKDOWN))
    again = chunk_document("guide.md", parse(GUIDE.read_bytes(), MARKDOWN))
    assert first == again
    assert all(c.id.startswith("guide.md#") for c in first)
    assert len({c.id for c in first}) == len(first)


def test_titles_carry_the_document_title_and_the_heading_path() -> None:
    chunks = chunk_document("guide.md", parse(GUIDE.read_bytes(), MARKDOWN))
    assert [c.title for c in chunks] == [
        "Workspace guide",
        "Workspace guide > Inviting people",
        "Workspace guide > Single sign-on",
        "Workspace guide > Single sign-on > Setting it up",
    ]
    assert chunks[3].path == ("Single sign-on", "Setting it up")


def test_chunks_are_packed_between_the_sizes_and_overlap_by_the_previous_paragraph_s_tail() -> None:
    policy = ChunkingPolicy(min_chars=800, max_chars=1200, overlap_chars=200)
    chunks = chunk_document("h", _long_doc(), policy)
    assert len(chunks) >= 3
    for before, after in itertools.pairwise(chunks):
        tail = after.text.split("\n\n")[0]
        assert 0 < len(tail) <= 200 and before.text.endswith(tail)
        assert tail.split(" ")[0] in before.text.split(" ")  # starts at a word
    for chunk in chunks[:-1]:
        packed = chunk.text.split("\n\n", 1)[-1] if chunk is not chunks[0] else chunk.text
        assert 800 <= len(packed) <= 1200
    assert "\n\n" not in chunks[0].text.split("\n\n", 1)[0]


def test_an_edited_paragraph_changes_only_its_chunk_s_id() -> None:
    policy = ChunkingPolicy()
    before = chunk_document("h", _long_doc(), policy)
    # A paragraph in the middle of the second chunk (not its last: that is the next one's overlap).
    second = before[1].text.split("\n\n")
    edited = next(n for n in range(12) if _paragraph(n) == second[2])
    after = chunk_document("h", _long_doc(edit=edited), policy)
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a.id != b.id]
    assert changed == [1]


def test_ids_depend_on_the_document_the_title_and_the_text() -> None:
    doc = _long_doc()
    ids = {c.id for c in chunk_document("h", doc)}
    assert not ids & {c.id for c in chunk_document("other", doc)}
    retitled = ParsedDocument("Manual", doc.sections)
    assert not ids & {c.id for c in chunk_document("h", retitled)}


def test_repeated_text_under_one_heading_still_gets_unique_ids() -> None:
    doc = ParsedDocument(
        "T", (Section(("A",), ("same",)), Section(("B",), ("same",)), Section(("A",), ("same",)))
    )
    ids = [c.id for c in chunk_document("d", doc)]
    assert len(set(ids)) == 3 and ids[2] == ids[0] + ".2"


def test_a_paragraph_longer_than_a_chunk_is_cut_at_sentences_then_words() -> None:
    sentence = "This sentence has exactly eight words in it. "
    doc = ParsedDocument("", (Section((), ((sentence * 60).strip(), "x" * 3000)),))
    chunks = chunk_document("d", doc, ChunkingPolicy(overlap_chars=0))
    assert all(len(c.text) <= 1200 for c in chunks)
    assert chunks[0].text.endswith("in it.")
    assert "".join(c.text for c in chunks if set(c.text) == {"x"}) == "x" * 3000
    assert chunks[0].title == ""


def test_a_policy_must_make_sense() -> None:
    with pytest.raises(ValueError):
        ChunkingPolicy(min_chars=900, max_chars=800)
    with pytest.raises(ValueError):
        ChunkingPolicy(overlap_chars=900)
