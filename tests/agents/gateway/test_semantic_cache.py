"""The semantic cache: a paraphrase is served, a near miss is not, scopes (tenants) do not mix,
entries expire, and on the real broker a second worker is warm from the topic and follows it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from agents.gateway.cache import CompactedTopic
from agents.gateway.semantic_cache import SEMANTIC_ENTRY, SemanticCache, scope_of
from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder
from streams.contracts.codec import SingleObjectCodec
from streams.contracts.schemas import SchemaStore
from streams.ingress.publish import Publisher
from streams.kafka.connection import Cluster

EMBEDDER = WordLlamaEmbedder.load()
ACME = scope_of("acme", "billing")


async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    return EMBEDDER.embed(texts)


def cache(**kwargs: object) -> SemanticCache:
    return SemanticCache(embed, embedding_model=EMBEDDING_MODEL, dimensions=256, **kwargs)  # type: ignore[arg-type]


async def test_a_paraphrase_is_served_and_a_near_miss_is_not() -> None:
    semantic = cache()
    await semantic.remember(
        "How do I cancel my subscription?", ACME, "Settings > Billing > Cancel", "m", "r-1"
    )
    hit = await semantic.lookup("how can i cancel my subscription", ACME)
    assert hit.hit and hit.entry is not None and hit.entry.answer == "Settings > Billing > Cancel"
    assert hit.describe().startswith("semantic cache hit, similarity 0.9") and hit.describe().endswith(
        "of r-1"
    )
    assert not (await semantic.lookup("How do I cancel my invoice?", ACME)).hit  # 0.66: below
    await semantic.remember("How do I add 3 seats?", ACME, "three", "m", "r-2")
    miss = await semantic.lookup("How do I add 5 seats?", ACME)  # close, refused
    assert not miss.hit and miss.similarity >= semantic.threshold
    assert miss.refused == "numbers differ: 5 vs 3" and "refused, numbers differ" in miss.describe()


async def test_scopes_and_tenants_do_not_share() -> None:
    semantic = cache()
    await semantic.remember("How do I reset my password?", ACME, "answer", "m")
    assert (await semantic.lookup("How do I reset my password?", ACME)).hit
    assert not (await semantic.lookup("How do I reset my password?", scope_of("globex", "billing"))).hit
    assert not (await semantic.lookup("How do I reset my password?", scope_of("acme", "account"))).hit
    # A request without a tenant is a tenant of its own ("-"), the same whether it says "" or nothing.
    assert scope_of(None, "billing") == scope_of("", "billing") == "|-|billing" != scope_of("acme", "billing")


async def test_entries_expire_and_a_full_scope_drops_its_oldest() -> None:
    semantic = cache(ttl_s=0.05, max_per_scope=2)
    await semantic.remember("How do I export a dashboard?", ACME, "a", "m")
    await asyncio.sleep(0.1)
    assert not (await semantic.lookup("How do I export a dashboard?", ACME)).hit
    semantic = cache(max_per_scope=2)
    for text in ("How do I export a dashboard?", "How do I add a seat?", "Where is my API key?"):
        await semantic.remember(text, ACME, text, "m")
        await asyncio.sleep(0.002)  # distinct creation times
    assert len(semantic) == 2
    assert not (await semantic.lookup("How do I export a dashboard?", ACME)).hit
    assert (await semantic.lookup("Where is my API key?", ACME)).hit


async def test_a_threshold_alone_is_not_enough() -> None:
    semantic = cache(threshold=0.0)
    await semantic.remember("Can I export a dashboard as CSV?", ACME, "yes", "m")
    found = await semantic.lookup("Can I export a dashboard as PDF?", ACME)
    assert not found.hit and found.refused == "named things differ: pdf vs csv"


async def test_another_worker_is_warm_from_the_topic_and_follows_it(
    cluster: Cluster, make_topics, unique: str, schema_store: SchemaStore
) -> None:
    catalog = await make_topics(
        f"topics:\n  {unique}.semantic:\n    value: {SEMANTIC_ENTRY}\n    cleanup: compact\n"
        "    retention: forever\n    partitions: 3\n",
        unique,
    )
    codec = SingleObjectCodec(schema_store)
    async with Publisher(cluster=cluster, catalog=catalog, codec=codec) as publisher:
        topic = CompactedTopic(cluster, publisher, codec, f"{unique}.semantic", SEMANTIC_ENTRY)
        async with cache(topic=topic) as first:
            await first.remember("How do I cancel my subscription?", ACME, "cancel it", "m", "r-1")
        # A restart (or another worker): warm from the topic.
        async with cache(topic=topic) as second:
            assert len(second) == 1
            found = await second.lookup("how can i cancel my subscription", ACME)
            assert found.entry is not None and found.entry.answer == "cancel it"
            assert found.entry.source_id == "r-1"
            # A third worker answers; the second follows and serves it.
            async with cache(topic=topic) as third:
                await third.remember("Where do I find my API key?", ACME, "Settings > API", "m", "r-2")
            for _ in range(50):
                if (await second.lookup("where can I find my API key", ACME)).hit:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the second worker never saw the third's entry")
        # Another embedding model's cache reads none of these vectors.
        other = SemanticCache(embed, embedding_model="other-model", dimensions=256, topic=topic)
        async with other:
            assert len(other) == 0 and other.skipped == 2
