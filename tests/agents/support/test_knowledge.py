"""Documents change while the support pipeline answers: on the real broker, the kb pipeline and
the support pipeline side by side, answers cite what the documents say now and never a
document that was deleted, even when the question was answered (and cached) before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.kb.config import KbConfig
from agents.kb.documents import Draft, KbPublisher, request_id_for
from agents.kb.records import INDEXED
from agents.kb.stages import kb_stages
from agents.support.services import SupportConfig
from agents.support.stages import support_stages
from streams.ingress.publish import Publisher
from streams.kafka.follow import Follower
from streams.runtime.project import Project
from streams.runtime.stage_worker import StageWorker
from tests.streams.running import REPO, running, start_group_at_end


async def test_answers_follow_documents_as_they_are_added_changed_and_deleted(
    project: Project, unique: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    cluster = project.cluster()
    quokka, wombat = f"{unique}-quokka", f"{unique}-wombat"
    kb = kb_stages(KbConfig(models=REPO / "models.yaml", home=home))
    for stage in kb:  # this test's documents only, not what other tests left on the topics
        await start_group_at_end(cluster, f"{unique}-{stage.name}", stage.consumes)
    support = support_stages(SupportConfig(home=home, models=REPO / "models.yaml", cache_scope=unique))
    clients = {"cluster": cluster, "catalog": project.catalog, "codec": project.codec}
    workers = [StageWorker(s, **clients, group_id=f"{unique}-{s.name}") for s in kb]  # type: ignore[arg-type]
    workers += [StageWorker(s, **clients) for s in support]  # type: ignore[arg-type]

    async with (
        running(*workers),
        Follower(cluster, ["support.responses", "support.rejected", INDEXED]) as follower,
        Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub,
    ):
        documents = KbPublisher(pub, project.catalog, project.codec)

        async def put(document_id: str, title: str, text: str) -> None:
            content = f"# {title}\n\n{text}\n".encode()
            draft = Draft(document_id, "docs", "text/markdown", content, title, f"https://x/{document_id}")
            assert await documents.publish(draft)
            await indexed(document_id)

        async def indexed(document_id: str) -> None:
            got = await follower.collect({request_id_for(document_id)}, timeout_s=90)
            assert request_id_for(document_id) in got, f"{document_id} was not indexed"
            # The retrievers read the index's revision at most once a second.
            await asyncio.sleep(1.2)

        async def ask(body: str) -> dict[str, Any]:
            rid = await pub.publish("support.requests", {"body": body})
            got = await follower.collect({rid}, timeout_s=60)
            assert rid in got, f"no answer to {body!r}"
            arrival = got[rid][-1]
            assert arrival.topic == "support.responses", arrival.topic
            return project.codec.decode("podium.support.Response", arrival.value or b"")

        await put(quokka, "Quokka mode", "Turn on Quokka mode under Settings > Labs > Quokka toggle.")
        await put(wombat, "Wombat exports", "Export a wombat report as CSV from Reports > Wombat > Export.")
        question = "How do I turn on Quokka mode?"
        first = await ask(question)
        assert quokka in [c["id"] for c in first["citations"]], first
        assert "Labs" in first["answer"], first["answer"]

        # The document changes: the same question (answered and cached before) gets the new text.
        await put(quokka, "Quokka mode", "Quokka mode moved: switch it on under Settings > Experiments.")
        again = await ask(question)
        assert quokka in [c["id"] for c in again["citations"]], again
        assert "Experiments" in again["answer"] and "Labs" not in again["answer"], again["answer"]
        assert "changed since" in again["steps"][0]["decision"], again["steps"][0]
        assert not again["steps"][0]["cache_hit"]

        # A deleted document is never cited again, cached or not.
        export = "How can I export a wombat report as CSV?"
        assert wombat in [c["id"] for c in (await ask(export))["citations"]]
        await documents.delete(wombat)
        await indexed(wombat)
        after = await ask(export)
        assert wombat not in [c["id"] for c in after["citations"]], after
        assert "Wombat > Export" not in after["answer"], after["answer"]
