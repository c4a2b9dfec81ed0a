"""What `podium ingest docs` reads from files, folders and URLs, without Kafka (the HTTP side
through httpx's MockTransport: a server's answers, not Kafka, are what is stood in for)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from agents.kb.documents import Draft, Refused, drafts_from_path, drafts_from_url, request_id_for
from agents.rag.parsing import HTML, MARKDOWN, PDF, ROW
from tests.agents.rag.documents import GUIDE, make_pdf


def test_a_folder_is_walked_with_ids_relative_to_its_root_and_rows_keep_theirs(tmp_path: Path) -> None:
    root = tmp_path / "handbook"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "guide.md").write_bytes(GUIDE.read_bytes())
    (root / "manual.pdf").write_bytes(make_pdf([["Page one."]]))
    (root / "faq.jsonl").write_text(
        json.dumps({"id": "faq-1", "question": "Q?", "answer": "A.", "url": "u"}) + "\n"
    )
    (root / "image.png").write_bytes(b"\x89PNG")  # passed over
    (root / "eval").mkdir()
    (root / "eval" / "questions.jsonl").write_text('{"id": "q1", "question": "Q?", "relevant": ["faq-1"]}\n')
    (root / ".git").mkdir()
    (root / ".git" / "notes.md").write_text("# hidden\n\nnot a document\n")
    found = list(drafts_from_path(root, tenant="acme", language="de"))
    assert all(isinstance(d, Draft) for d in found)
    drafts = {d.document_id: d for d in found if isinstance(d, Draft)}
    assert sorted(drafts) == ["faq-1", "guides/guide.md", "manual.pdf"]
    guide = drafts["guides/guide.md"]
    assert (guide.source, guide.media_type, guide.tenant, guide.language) == (
        "handbook",
        MARKDOWN,
        "acme",
        "de",
    )
    assert guide.content_hash == hashlib.sha256(GUIDE.read_bytes()).hexdigest()
    row = drafts["faq-1"]
    assert (row.source, row.media_type, row.title, row.url) == ("faq", ROW, "Q?", "u")
    assert drafts["manual.pdf"].media_type == PDF
    named = list(drafts_from_path(root, source="kb"))
    assert {d.source for d in named if isinstance(d, Draft)} == {"kb"}


def test_a_named_file_of_no_supported_type_or_a_missing_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "slides.pptx").write_bytes(b"x")
    [refused] = list(drafts_from_path(tmp_path / "slides.pptx"))
    assert isinstance(refused, Refused) and "not a supported type" in refused.reason
    [missing] = list(drafts_from_path(tmp_path / "absent"))
    assert isinstance(missing, Refused) and "no such file" in missing.reason
    (tmp_path / "bad.jsonl").write_text('{"text": "no id"}\n{"id": "ok", "text": "t"}\n{"id": "no-body"}\n')
    found = list(drafts_from_path(tmp_path / "bad.jsonl"))
    assert [type(f).__name__ for f in found] == ["Refused", "Draft", "Refused"]
    assert isinstance(found[0], Refused) and "line 1" in found[0].reason
    assert isinstance(found[2], Refused) and "'no-body' has no 'text'" in found[2].reason
    (tmp_path / "eval.jsonl").write_text('{"id": "q1", "question": "Q?", "relevant": ["d"]}\n')
    [questions] = list(drafts_from_path(tmp_path / "eval.jsonl"))
    assert isinstance(questions, Refused) and "not a collection of documents" in questions.reason


def test_the_shipped_knowledge_base_folder_is_its_80_documents_not_its_eval_set() -> None:
    found = list(drafts_from_path(Path(__file__).resolve().parents[3] / "agents" / "data" / "kb"))
    assert all(isinstance(d, Draft) for d in found) and len(found) == 80
    assert {d.source for d in found if isinstance(d, Draft)} == {"docs", "faq"}


def test_request_ids_are_document_ids_made_safe() -> None:
    assert request_id_for("docs-password-reset") == "docs-password-reset"
    assert request_id_for("guides/setup guide.md") == "guides_setup_guide.md"


def _client(routes: dict[str, httpx.Response]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_url_is_one_document_by_its_content_type_or_suffix_and_big_or_missing_ones_are_refused() -> (
    None
):
    page = b"<html><title>T</title><body><p>Hi</p></body></html>"
    rows = json.dumps({"id": "web-1", "title": "W", "text": "x"}).encode() + b"\n"
    routes = {
        "https://docs.example/a": httpx.Response(
            200, content=page, headers={"content-type": "text/html; charset=utf-8"}
        ),
        "https://docs.example/b.md": httpx.Response(200, content=b"# B\n\nText.\n"),
        "https://docs.example/kb.jsonl": httpx.Response(
            200, content=rows, headers={"content-type": "text/plain"}
        ),
        "https://docs.example/big.md": httpx.Response(200, content=b"x" * 2000),
    }
    async with _client(routes) as client:
        [html] = await drafts_from_url("https://docs.example/a#top", client, max_bytes=1000)
        [markdown] = await drafts_from_url("https://docs.example/b.md", client, max_bytes=1000)
        [row] = await drafts_from_url("https://docs.example/kb.jsonl", client, max_bytes=1000)
        [big] = await drafts_from_url("https://docs.example/big.md", client, max_bytes=1000)
        [missing] = await drafts_from_url("https://docs.example/gone", client, max_bytes=1000)
    assert isinstance(html, Draft) and (html.document_id, html.media_type) == ("https://docs.example/a", HTML)
    assert html.url == "https://docs.example/a" and html.source == "docs.example"
    assert isinstance(markdown, Draft) and markdown.media_type == MARKDOWN
    assert isinstance(row, Draft) and (row.document_id, row.media_type) == ("web-1", ROW)
    assert isinstance(big, Refused) and "larger than" in big.reason
    assert isinstance(missing, Refused) and "404" in missing.reason


@pytest.mark.parametrize("name", ["notes.txt", "page.html"])
def test_single_files_are_named_by_their_file_name(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("text")
    [draft] = list(drafts_from_path(tmp_path / name))
    assert isinstance(draft, Draft) and draft.document_id == name and draft.source == tmp_path.name
