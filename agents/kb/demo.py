"""``podium demo``'s first part: the shipped knowledge base ingested over Kafka, as a user would.

1. start the kb stages (chunk, embed, index) on the broker;
2. publish ``agents/data/kb`` on ``kb.documents`` (only what changed since the topic's latest:
   a second run publishes nothing);
3. wait until the stages have read every record of their topics (their groups' lag is 0), with
   a progress bar; when the store under PODIUM_HOME holds no index although the stages had read
   everything before (a new home, a deleted index), build it from the compacted topic;
4. show the index versions, and one question answered by BM25, dense and hybrid retrieval, so
   the difference is seen, not described.

The support pipeline, which runs next, retrieves from this index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agents.kb.documents import Draft, KbPublisher, Refused, drafts_from_path
from agents.kb.records import DOCUMENTS, STAGES
from agents.kb.reindex import reindex
from agents.kb.services import KbServices
from agents.kb.stages import kb_stages
from agents.rag.retriever import MODES
from streams.ingress import Publisher
from streams.kafka import Cluster, TopicReader
from streams.runtime import Project, Stack

__all__ = ["SHIPPED", "run_kb_demo"]

SHIPPED = Path(__file__).parents[1] / "data" / "kb"
QUESTION = "We'd like to embed one of our dashboards in our intranet page. Is that possible?"


async def run_kb_demo(project: Project, console: Console) -> int:
    from agents.kb.config import kb_config

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    stages = kb_stages(kb_config(project.settings, project.sections.get("kb")), project.shared)
    services = stages[-1].resources[0]
    assert isinstance(services, KbServices)
    async with Stack(project, stages, echo=console.print, service_name="podium-demo") as stack:
        published, refused = await _publish(project, stack.cluster)
        console.print(
            f"{published} document(s) published on {DOCUMENTS} from {SHIPPED} (the others unchanged"
            f" since the topic's latest; {len(refused)} refused)"
        )
        await _caught_up(stack.cluster, console)
        store = services.store
        if await store.active() is None:
            # The groups had read kb.documents before, into another PODIUM_HOME (or the index
            # was deleted): the documents are all on the compacted topic, so build it from there.
            console.print(f"no index under {services.config.home}: building it from {DOCUMENTS}")
            report = await reindex(services, stack.cluster, project.catalog, project.codec)
            console.print(f"{report.version.name}: built from {DOCUMENTS} and active")
        table = Table(title="index versions (`podium kb status`)")
        for column in ("version", "state", "model", "dimensions", "chunks"):
            table.add_column(column)
        for v in await store.versions():
            count = await store.count(v.name)
            table.add_row(v.name, v.state, f"{v.provider}/{v.model}", str(v.dimensions), str(count))
        console.print(table)
        if await store.active() is None:
            console.print(f"[red]nothing is indexed[/]: is {DOCUMENTS} empty? (podium ingest docs {SHIPPED})")
            return 1
        retriever = services.retriever()
        try:
            table = Table(title=f'"{QUESTION}" (`podium kb search "..." --mode ...`)')
            for column in ("mode", "1st", "2nd", "3rd"):
                table.add_column(column)
            for mode in MODES:
                found = await retriever.search(QUESTION, 3, mode)
                table.add_row(mode, *(p.id for p in found.passages))
            console.print(table)
        finally:
            await retriever.aclose()
    return 0


async def _publish(project: Project, cluster: Cluster) -> tuple[int, list[Refused]]:
    published, refused = 0, []
    async with Publisher(cluster=cluster, catalog=project.catalog, codec=project.codec) as pub:
        kb = KbPublisher(pub, project.catalog, project.codec)
        await kb.load(cluster)
        for draft in drafts_from_path(SHIPPED):
            if isinstance(draft, Refused):
                refused.append(draft)
            elif isinstance(draft, Draft) and await kb.publish(draft):
                published += 1
    return published, refused


async def _caught_up(cluster: Cluster, console: Console, timeout_s: float = 300.0) -> None:
    """Until every stage's group has committed its whole input topic."""
    deadline = time.monotonic() + timeout_s
    async with TopicReader(cluster) as reader:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("indexing the knowledge base", total=None)
            while True:
                lags = [await reader.lag(f"podium.{stage}", topic) for stage, topic in STAGES]
                progress.update(task, description=f"indexing: records still to read per stage {lags}")
                if sum(lags) == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the kb stages did not catch up in {timeout_s:.0f}s (lag {lags})")
                await asyncio.sleep(0.5)
    console.print("the kb stages have read everything on their topics (lag 0)")
