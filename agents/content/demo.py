"""The content part of ``podium demo``: the sample briefs through draft, the parallel checks,
the join and its revise loop, and SEO; every article written to a folder as Markdown."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.content.seo import slugify
from streams.ingress import Publisher
from streams.kafka import Follower
from streams.operations import pipeline_topics
from streams.runtime import Project, Stack

__all__ = ["run_content_demo", "write_article"]

BRIEFS = Path(__file__).resolve().parent.parent / "data" / "content" / "briefs.jsonl"


async def run_content_demo(project: Project, console: Console, folder: Path) -> int:
    stages = project.build("content")  # as `podium up` runs it
    input_topic, terminal = pipeline_topics(stages, project.catalog)
    briefs = [json.loads(line) for line in BRIEFS.read_text().splitlines() if line.strip()]
    ended: dict[str, tuple[str, dict[str, Any]]] = {}
    async with (
        Stack(project, stages, echo=console.print, service_name="podium-demo") as stack,
        Follower(stack.cluster, terminal) as follower,
        Publisher(cluster=stack.cluster, catalog=project.catalog, codec=project.codec,
                  telemetry=stack.telemetry) as publisher,
    ):  # fmt: skip
        t0 = time.perf_counter()
        sent = {}
        for b in briefs:
            record = {k: b[k] for k in ("topic", "audience", "points", "must_include")}
            sent[await publisher.publish(input_topic, record)] = b
        console.print(f"published {len(sent)} briefs to {input_topic}")
        got = await follower.collect(set(sent), timeout_s=120)
        elapsed = time.perf_counter() - t0
        for rid, arrivals in got.items():
            schema = project.catalog.get(arrivals[0].topic).value_schema
            ended[rid] = (arrivals[0].topic, project.codec.decode(schema, arrivals[0].value or b""))
    _print_articles(console, sent, ended)
    # A dead letter is not an article: the table shows why, the folder holds articles only.
    written = [
        write_article(folder, article) for topic, article in ended.values() if not topic.endswith(".dlq")
    ]
    published = sum(1 for topic, _ in ended.values() if topic == "content.published")
    console.print(
        f"{len(ended)}/{len(sent)} briefs ended in {elapsed:.1f}s: {published} published, "
        f"{len(ended) - published} rejected or dead-lettered; articles written to {folder}"
        + (f" ({len(written)} files)" if written else "")
    )
    missing = set(sent) - set(ended)
    if missing:
        console.print(f"[red]{len(missing)} brief(s) reached no terminal topic: {sorted(missing)}[/]")
    return 1 if missing else 0


def write_article(folder: Path, article: dict[str, Any]) -> Path:
    """A published article (with its SEO block) or a rejected one (with the reasons), as Markdown,
    followed by every check's score and every decision taken."""
    folder.mkdir(parents=True, exist_ok=True)
    seo = article.get("seo")
    name = seo["slug"] if seo else "rejected-" + slugify(article["topic"], 50)
    lines = [f"# {article['title'] or article['topic']}", ""]
    if seo:
        lines += [f"> **SEO** title: {seo['title']}  ", f"> description: {seo['description']}  ",
                  f"> keywords: {', '.join(seo['keywords'])}  ", f"> slug: `{seo['slug']}`", ""]  # fmt: skip
    else:
        lines += ["> **Rejected:** " + "; ".join(article["reasons"]), ""]
    lines += [article["body"], "", "## Checks", ""]
    for check in article["checks"]:
        verdict = "passed" if check["passed"] else "below threshold"
        lines.append(
            f"- **{check['branch']}** {check['score']:.2f} (threshold {check['threshold']:.2f}, {verdict})"
        )
        lines += [
            f"  - {f['kind']}: {f['text'][:140]}" for f in check["findings"] if f["kind"] != "supported"
        ]
    lines += ["", "## Decisions", ""]
    lines += [
        f"- round {d['round']} {d['stage']}: {d['decision']} ({d['reason']})" for d in article["decisions"]
    ]
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _print_articles(
    console: Console, sent: dict[str, Any], ended: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    table = Table(title="content: where every brief ended")
    for name in ("brief", "ended", "drafts", "fact", "style", "join decisions", "title / reason"):
        table.add_column(name, no_wrap=True, max_width=40 if name in ("brief", "title / reason") else None)
    for rid, brief in sent.items():
        if rid not in ended:
            table.add_row(brief["topic"], "[red]MISSING[/]", "", "", "", "", "")
            continue
        topic, article = ended[rid]
        if topic.endswith(".dlq"):
            reason = f"{article['stage']}: {article['error_type']}: {article['error_message'][:120]}"
            table.add_row(brief["topic"], f"[red]{topic}[/]", "", "", "", "", reason)
            continue
        scores = {c["branch"]: f"{c['score']:.2f}" for c in article["checks"]}
        path = " → ".join(d["decision"] for d in article["decisions"] if d["stage"] == "join")
        text = article["title"] if topic == "content.published" else "; ".join(article.get("reasons", []))
        ended_in = topic.removeprefix("content.")
        drafts = str(article["round"] + 1)
        table.add_row(
            brief["topic"],
            ended_in,
            drafts,
            scores.get("factcheck", "-"),
            scores.get("style", "-"),
            path,
            text,
        )
    console.print(table)
