"""``podium ingest``: real-time feeds onto the market pipeline's topics (news, price ticks), and
documents onto the knowledge base's (``docs``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from streams.cli import (
    app,
    console,
    err,
    load_project,
    run_async,
)
from streams.runtime import Project

ingest_app = typer.Typer(
    help="Feeds and documents in: news (RSS, Atom, JSON), price ticks, knowledge-base documents.",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")


def _ingest_project(url: str | None, replay_file: Path | None) -> Project:
    """What both ingesters check first: exactly one source, quiet client logs, a project."""
    if (url is None) == (replay_file is None):
        err.print("give exactly one of --url or --replay-file")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return load_project()


@ingest_app.command("news")
def ingest_news(
    url: Annotated[str | None, typer.Option("--url", help="An RSS, Atom or JSON feed to poll.")] = None,
    replay_file: Annotated[
        Path | None, typer.Option("--replay-file", help="A recorded feed (JSON lines) to play instead.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls of --url.")] = 30.0,
    rounds: Annotated[int | None, typer.Option(help="Stop after this many polls (default: run on).")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay at this many times the recorded pace (default: at once).")
    ] = None,
) -> None:
    """News items onto market.news: new ones once (a restart re-publishes nothing), malformed
    entries to market.ingest.failed with their raw text."""
    from agents.market.feeds.news import FAILED_TOPIC, NEWS_TOPIC, NewsIngester, poll_feed
    from agents.market.feeds.news import replay_file as play
    from streams.ingress import Publisher

    project = _ingest_project(url, replay_file)
    source = url or str(replay_file)

    async def go() -> None:
        async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
            ingester = NewsIngester(pub, project.catalog, project.codec, source)
            known = await ingester.load_seen(project.cluster())
            console.print(f"{known} item(s) already on {NEWS_TOPIC}; they will not be published again")
            if replay_file is not None:
                await play(ingester, replay_file, speed)
            else:
                assert url is not None

                def report(done: int, new: int, status: str) -> None:
                    console.print(f"poll {done}: {status}")

                await poll_feed(ingester, url, interval_s=interval, rounds=rounds, on_round=report)
            console.print(
                f"{ingester.published} new item(s) on {NEWS_TOPIC}, "
                f"{ingester.failed} malformed to {FAILED_TOPIC}"
            )

    run_async(go)


@ingest_app.command("prices")
def ingest_prices(
    url: Annotated[
        str | None, typer.Option("--url", help="http(s):// JSON to poll, or ws(s):// to stream.")
    ] = None,
    replay_file: Annotated[
        Path | None, typer.Option("--replay-file", help="Recorded ticks (JSON lines) to play instead.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls of an http --url.")] = 1.0,
    rounds: Annotated[int | None, typer.Option(help="Stop after this many polls or messages.")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay at this many times the recorded pace (default: at once).")
    ] = None,
) -> None:
    """Price ticks onto market.ticks, keyed by symbol with the source's timestamp; per symbol
    only newer ticks go out (a restart resumes), unreadable ones to market.ingest.failed."""
    from agents.market.feeds.ticks import TICKS_TOPIC, TickIngester, poll_ticks, replay_ticks, stream_ticks
    from streams.ingress import Publisher

    project = _ingest_project(url, replay_file)

    async def go() -> None:
        async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
            ingester = TickIngester(pub, project.codec, url or str(replay_file))
            symbols = await ingester.load_last(project.cluster())
            console.print(f"resuming {symbols} symbol(s) from {TICKS_TOPIC}")
            if replay_file is not None:
                await replay_ticks(ingester, replay_file, speed)
            elif url is not None and url.startswith(("ws://", "wss://")):
                await stream_ticks(ingester, url, max_messages=rounds)
            elif url is not None:
                await poll_ticks(
                    ingester,
                    url,
                    interval_s=interval,
                    rounds=rounds,
                    on_round=lambda done, new, status: console.print(f"poll {done}: {status}"),
                )
            console.print(f"{ingester.published} tick(s) on {TICKS_TOPIC}, {ingester.failed} unreadable")

    run_async(go)


@ingest_app.command("docs")
def ingest_docs(
    target: Annotated[
        str, typer.Argument(help="A directory (walked recursively), a file or an http(s) URL.")
    ],
    source: Annotated[
        str | None,
        typer.Option(help="The collection's name (default: a JSON-lines file's stem, else the root's name)."),
    ] = None,
    tenant: Annotated[
        str, typer.Option(help="The tenant the documents belong to (default: every tenant).")
    ] = "",
    language: Annotated[str, typer.Option(help="The documents' language.")] = "en",
) -> None:
    """Documents onto kb.documents (Markdown, HTML, text, PDF, JSON-lines rows): only those that
    changed since their latest version there; a file too large for the topic is refused."""
    from rich.progress import BarColumn, Progress, TextColumn

    from agents.kb.documents import Draft, KbPublisher, Refused, drafts_from_path, drafts_from_url
    from agents.kb.records import DOCUMENTS
    from streams.ingress import Publisher

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = load_project()

    async def go() -> int:
        async with Publisher(cluster=project.cluster(), catalog=project.catalog, codec=project.codec) as pub:
            kb = KbPublisher(pub, project.catalog, project.codec)
            known = await kb.load(project.cluster())
            console.print(f"{known} document(s) on {DOCUMENTS}")
            found: Iterable[Draft | Refused]
            if target.startswith(("http://", "https://")):
                import httpx

                async with httpx.AsyncClient(follow_redirects=True, timeout=30.0) as client:
                    found = await drafts_from_url(
                        target,
                        client,
                        max_bytes=kb.max_bytes,
                        source=source,
                        tenant=tenant,
                        language=language,
                    )
            else:  # read one file at a time: a large folder is never in memory at once
                found = drafts_from_path(Path(target), source=source, tenant=tenant, language=language)
            published = unchanged = 0
            refused: list[Refused] = []
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed} read"),
                console=console,
            ) as progress:
                task = progress.add_task(f"publishing to {DOCUMENTS}", total=None)
                for item in found:
                    if isinstance(item, Refused):
                        refused.append(item)
                    elif (too_large := kb.fits(item)) is not None:
                        refused.append(too_large)
                    elif await kb.publish(item):
                        published += 1
                    else:
                        unchanged += 1
                    progress.advance(task)
            for refusal in refused:
                err.print(f"[yellow]refused[/] {refusal.name}: {refusal.reason}")
            console.print(f"{published} published, {unchanged} unchanged, {len(refused)} refused")
            return 1 if refused else 0

    if run_async(go):
        raise typer.Exit(1)
