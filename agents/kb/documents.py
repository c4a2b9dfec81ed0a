"""Documents onto kb.documents (``podium ingest docs``, ``podium kb delete``).

What is read: a file, a directory (walked recursively, every file of a supported type) or a URL.
A JSON-lines collection gives one document per row, under the row's id (JSON lines with no
``text`` or ``answer`` in any row, such as the eval set under ``agents/data/kb/eval``, are not
documents: passed over in a folder, refused when named); any other file is one document whose id
is its path relative to the root (a URL's id is the URL). What is published:

1. the compacted topic is read to its end first, so each document's latest record is known;
2. a document whose record would be the same (content hash, title, url, source, tenant,
   language) is unchanged and not published again, so re-ingesting writes nothing;
3. a document larger than the topic's ``max.message.bytes`` is refused here (it cannot be
   published); a smaller one the parsers cannot read is published all the same, and the chunk
   stage dead-letters it with the reason;
4. a deletion is a tombstone of the document's key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from agents.kb.records import DOCUMENTS, Document
from agents.rag.parsing import COLLECTION, media_type_for, normalise_media_type, split_collection
from streams import Catalog, Codec, Publisher, now_ms
from streams.contracts import REQUEST_ID
from streams.kafka import Cluster, Selection, TopicReader

__all__ = [
    "Draft",
    "KbPublisher",
    "Refused",
    "drafts_from_path",
    "drafts_from_url",
    "latest_documents",
    "request_id_for",
]

T = TypeVar("T")

_RECORD_OVERHEAD = 2048  # key, headers and batch framing that count against max.message.bytes
_NOT_IN_REQUEST_IDS = re.compile(r"[^A-Za-z0-9._:-]")
_NOT_DOCUMENTS = "no row has a 'text' or an 'answer': not a collection of documents"


def request_id_for(document_id: str) -> str:
    """The request id a document's records travel under (``podium trace`` finds them by it): the
    id with what request ids may not hold (a path's ``/``) as ``_``. The key stays the id itself."""
    return _NOT_IN_REQUEST_IDS.sub("_", document_id)[:128] or "_"


@dataclass(frozen=True)
class Draft:
    """A document as read, before it is published."""

    document_id: str
    source: str
    media_type: str
    content: bytes
    title: str = ""
    url: str = ""
    tenant: str = ""
    language: str = "en"

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def record(self) -> Document:
        return {
            "document_id": self.document_id,
            "tenant": self.tenant,
            "source": self.source,
            "title": self.title,
            "url": self.url,
            "media_type": self.media_type,
            "language": self.language,
            "content": self.content,
            "content_hash": self.content_hash,
            "published_ms": now_ms(),
        }


@dataclass(frozen=True)
class Refused:
    """Something that cannot become a document on the topic, and why."""

    name: str
    reason: str


def _identity(record: Document | dict[str, Any]) -> tuple[str, ...]:
    """What makes two records of one document the same version (the time aside)."""
    return tuple(
        str(record[k]) for k in ("content_hash", "title", "url", "source", "tenant", "language", "media_type")
    )


def drafts_from_path(
    path: Path, *, source: str | None = None, tenant: str = "", language: str = "en"
) -> Iterator[Draft | Refused]:
    """The documents under ``path`` (a file or a directory, walked in name order); files of
    types podium does not read are passed over in a directory, refused when named."""
    if path.is_dir():
        root = path
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
    elif path.is_file():
        root, files = path.parent, [path]
    else:
        yield Refused(str(path), "no such file or directory")
        return
    for file in files:
        relative = file.relative_to(root).as_posix()
        media_type = media_type_for(file.name)
        if media_type is None:
            if file == path:
                yield Refused(relative, f"not a supported type ({file.suffix or 'no suffix'})")
            continue
        try:
            content = file.read_bytes()
        except OSError as exc:
            yield Refused(relative, f"cannot be read: {exc.strerror}")
            continue
        name = source or (file.stem if media_type == COLLECTION else root.resolve().name)
        drafts = list(_drafts(relative, name, media_type, content, "", tenant, language))
        if file != path and drafts == [Refused(relative, _NOT_DOCUMENTS)]:
            continue  # in a folder, JSON lines that are not documents (an eval set) are passed over
        yield from drafts


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _drafts(
    document_id: str, source: str, media_type: str, content: bytes, url: str, tenant: str, language: str
) -> Iterator[Draft | Refused]:
    if media_type != COLLECTION:
        yield Draft(document_id, source, media_type, content, url=url, tenant=tenant, language=language)
        return
    try:
        rows, problems = split_collection(content)
    except Exception as exc:  # noqa: BLE001 - the parser's reasons are the refusal's
        yield Refused(document_id, str(exc))
        return
    if rows and not any(row.has_body for row in rows):
        yield Refused(document_id, _NOT_DOCUMENTS)
        return
    for problem in problems:
        yield Refused(document_id, problem)
    for row in rows:
        if not row.has_body:
            yield Refused(document_id, f"row {row.document_id!r} has no 'text' or 'answer'")
            continue
        yield Draft(
            row.document_id,
            source,
            "application/json",
            row.content,
            title=row.title,
            url=row.url,
            tenant=tenant,
            language=language,
        )


async def drafts_from_url(
    url: str,
    client: httpx.AsyncClient,
    *,
    max_bytes: int,
    source: str | None = None,
    tenant: str = "",
    language: str = "en",
) -> list[Draft | Refused]:
    """The document at ``url`` (its id is the URL without a fragment); its media type is the
    server's Content-Type, else the path's suffix. Read at most ``max_bytes`` + 1."""
    document_id = url.split("#", 1)[0]
    try:
        async with client.stream("GET", document_id) as response:
            if response.status_code >= 400:
                return [Refused(url, f"the server answered {response.status_code}")]
            content = bytearray()
            async for part in response.aiter_bytes():
                content += part
                if len(content) > max_bytes:
                    return [Refused(url, f"larger than kb.documents accepts ({max_bytes} bytes)")]
            declared = normalise_media_type(response.headers.get("content-type", ""))
    except httpx.HTTPError as exc:
        return [Refused(url, f"cannot be fetched: {exc}")]
    path = urlsplit(document_id).path
    by_suffix = media_type_for(path)
    media_type = (
        by_suffix if declared in ("", "application/octet-stream") or by_suffix == COLLECTION else declared
    )
    if media_type is None:
        return [Refused(url, "no Content-Type and no known suffix")]
    name = source or urlsplit(url).hostname or "web"
    return list(_drafts(document_id, name, media_type, bytes(content), document_id, tenant, language))


async def latest_documents(
    cluster: Cluster, codec: Codec, schema: str, keep: Callable[[Document], T]
) -> dict[str, T]:
    """kb.documents read from its beginning to its end offsets when reading starts: the latest
    record of every key (what ``keep`` makes of it, so only that is held), a tombstone deleting
    it: what compaction keeps, before it ran."""
    latest: dict[str, T] = {}
    async with TopicReader(cluster) as reader:
        async for record in reader.read(await reader.plan(Selection(DOCUMENTS))):
            if record.key is None:
                continue
            key = record.key.decode("utf-8", "replace")
            if record.value is None:
                latest.pop(key, None)
                continue
            latest[key] = keep(cast(Document, codec.decode(schema, record.value)))
    return latest


class KbPublisher:
    """Publishes documents that changed since the topic's latest records, and deletions."""

    def __init__(self, publisher: Publisher, catalog: Catalog, codec: Codec) -> None:
        self._publisher = publisher
        self._codec = codec
        spec = catalog.get(DOCUMENTS)
        self._schema = spec.value_schema
        self.max_bytes = spec.max_message_bytes
        self.known: dict[str, tuple[str, ...]] = {}

    async def load(self, cluster: Cluster) -> int:
        """Read kb.documents to its end: each document's latest version (a tombstone forgets it)."""
        self.known = await latest_documents(cluster, self._codec, self._schema, _identity)
        return len(self.known)

    def fits(self, draft: Draft) -> Refused | None:
        """Refused when its record cannot be published to kb.documents at all."""
        size = len(self._codec.encode(self._schema, dict(draft.record()))) + len(draft.document_id)
        if size + _RECORD_OVERHEAD > self.max_bytes:
            return Refused(
                draft.document_id,
                f"{size} bytes: larger than kb.documents accepts (max.message.bytes {self.max_bytes})",
            )
        return None

    async def publish(self, draft: Draft) -> bool:
        """True when published, False when the topic already holds this version."""
        record = draft.record()
        if self.known.get(draft.document_id) == _identity(record):
            return False
        await self._publisher.publish(
            DOCUMENTS, dict(record), request_id=request_id_for(draft.document_id), key=draft.document_id
        )
        self.known[draft.document_id] = _identity(record)
        return True

    async def delete(self, document_id: str) -> None:
        key = document_id.encode()
        await self._publisher.send_raw(
            DOCUMENTS, key, None, [(REQUEST_ID, request_id_for(document_id).encode())]
        )
        self.known.pop(document_id, None)
