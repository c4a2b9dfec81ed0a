"""The support pipeline's semantic cache on the real broker: a question put another way after an
answer is served from the cache at no cost, a near miss is not, tenants do not share, and workers
started afresh (a restart) are warm from podium.semantic-cache."""

from __future__ import annotations

from pathlib import Path

from agents.support.services import SupportConfig
from streams.contracts.headers import COST, header_value
from streams.ingress.publish import Publisher
from streams.kafka.follow import Arrival, Follower
from streams.runtime.project import Project
from tests.agents.support.test_pipeline import decode, workers
from tests.streams.running import REPO, running

ASKED = "How do I download an invoice?"
PUT_ANOTHER_WAY = "how can I download an invoice"  # similarity 0.90 (WordLlama)
AFTER_RESTART = "where do i download my invoice"  # 0.89
NEAR_MISS = "How do I download an invoice for order 58812?"  # 0.80, but the numbers differ


async def ask(project: Project, pub: Publisher, follower: Follower, body: str, tenant: str) -> Arrival:
    rid = await pub.publish("support.requests", {"body": body, "tenant": tenant})
    got = await follower.collect({rid}, timeout_s=60)
    assert rid in got, f"no response to {body!r}"
    return got[rid][0]


async def test_a_paraphrase_is_served_from_the_semantic_cache_and_a_near_miss_is_not(
    shipped_kb: Path, project: Project, unique: str
) -> None:
    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique)
    acme, globex = f"{unique}-acme", f"{unique}-globex"
    terminal = ["support.responses", "support.rejected"]
    async with (
        Follower(project.cluster(), terminal) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
    ):
        async with running(*workers(project, config)):
            first = decode(project, await ask(project, pub, follower, ASKED, acme))
            assert first["route"] == "rag" and not first["degraded"], first
            arrival = await ask(project, pub, follower, PUT_ANOTHER_WAY, acme)
            served = decode(project, arrival)
            assert served["route"] == "cache", served
            assert served["answer"] == first["answer"] and served["citations"] == first["citations"]
            [step] = served["steps"]
            assert step["cache_hit"] and step["cost_usd"] == 0.0
            assert "semantic cache hit, similarity 0." in step["decision"]
            assert step["decision"].endswith(f"of {first['request_id']}")
            assert served["cost_usd"] == 0.0 and float(header_value(arrival.headers, COST) or b"0") == 0.0
            near = decode(project, await ask(project, pub, follower, NEAR_MISS, acme))
            assert near["route"] == "rag", near
            assert "refused, numbers differ: 58812 vs nothing" in near["steps"][0]["decision"]
            # Another tenant's answer is never served: not put another way, not word for word.
            other = decode(project, await ask(project, pub, follower, PUT_ANOTHER_WAY, globex))
            assert other["route"] == "rag", other
            same_words = decode(project, await ask(project, pub, follower, ASKED, f"{unique}-initech"))
            assert same_words["route"] == "rag" and not same_words["steps"][0]["cache_hit"], same_words
        # New workers, new services: warm from the topic.
        async with running(*workers(project, config)):
            again = decode(project, await ask(project, pub, follower, AFTER_RESTART, acme))
            assert again["route"] == "cache" and again["answer"] == first["answer"], again
            assert again["steps"][0]["decision"].endswith(f"of {first['request_id']}")


async def test_dry_run_remembers_nothing(shipped_kb: Path, project: Project, unique: str) -> None:
    config = SupportConfig(home=shipped_kb, models=REPO / "models.yaml", cache_scope=unique, dry_run=True)
    async with (
        Follower(project.cluster(), ["support.responses"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
        running(*workers(project, config)),
    ):
        assert decode(project, await ask(project, pub, follower, ASKED, unique))["route"] == "rag"
        assert decode(project, await ask(project, pub, follower, PUT_ANOTHER_WAY, unique))["route"] == "rag"


async def test_a_priced_embedding_is_charged_to_the_request_and_nothing_else(
    shipped_kb: Path, project: Project, unique: str, tmp_path: Path
) -> None:
    """With a price on the embedding model ($1 a token here), a semantic hit costs exactly its
    request's embedding: no model call; the step and the response say the same figure."""
    models = tmp_path / "models.yaml"
    text = (REPO / "models.yaml").read_text()
    priced = text.replace(
        "local-wordllama: {input: 0, output: 0}", "local-wordllama: {input: 1000000, output: 0}"
    )
    assert priced != text
    models.write_text(priced)
    config = SupportConfig(home=shipped_kb, models=models, cache_scope=unique)
    async with (
        Follower(project.cluster(), ["support.responses"]) as follower,
        Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub,
        running(*workers(project, config)),
    ):
        first = decode(project, await ask(project, pub, follower, ASKED, unique))
        assert first["route"] == "rag" and first["cost_usd"] > 0  # remembering embeds it
        arrival = await ask(project, pub, follower, PUT_ANOTHER_WAY, unique)
        served = decode(project, arrival)
    assert served["route"] == "cache"
    [step] = served["steps"]
    assert step["cost_usd"] > 0 and served["cost_usd"] == step["cost_usd"]
    assert float(header_value(arrival.headers, COST) or b"0") == step["cost_usd"]
