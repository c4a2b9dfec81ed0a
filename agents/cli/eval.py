"""``podium eval``: measurements of the running system against labelled sets (``retrieval``:
recall@5 and MRR@10 of each search mode over the real index, on the question set of
agents/data/kb/eval)."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from streams.cli import app, console, err, guard, load_project, run_async

eval_app = typer.Typer(help="Measurements against labelled sets.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

SPLIT_CHOICES = ("heldout", "tune", "all")


@eval_app.command("retrieval")
def retrieval(
    split: Annotated[
        str, typer.Option("--split", help="heldout (what is reported), tune (what was tuned on) or all.")
    ] = "heldout",
    k: Annotated[int, typer.Option("--k", min=1, help="Documents per search (10 at least: MRR@10).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, per split and mode.")] = False,
) -> None:
    """Recall@5 and MRR@10 of bm25, dense and hybrid search over the active index version, on the
    labelled questions (agents/data/kb/eval/retrieval.jsonl); the shipped knowledge base must be
    ingested."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agents.cli.retrieval import NOTHING_INDEXED, open_retriever
    from agents.rag.evaluate import EVAL_SET, MODES, SPLITS, Report, evaluate, load_questions, render
    from agents.rag.retriever import Mode

    if split not in SPLIT_CHOICES:
        err.print(f"--split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")
        raise typer.Exit(2)
    splits = SPLITS if split == "all" else (split,)
    settings = load_project().settings
    questions = guard(lambda: load_questions(EVAL_SET))
    asked = [q for q in questions if q.split in splits]

    async def go() -> tuple[list[Report], str, list[str]]:
        async with open_retriever(settings) as opened:
            version = await opened.store.active()
            if version is None or await opened.store.count(version.name) == 0:
                return [], "", []
            indexed = {c.document_id for c in await opened.store.chunks(version.name)}
            missing = sorted({d for q in asked for d in q.relevant} - indexed)
            if missing:
                return [], version.name, missing
            reports = []
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                disable=as_json,
                transient=True,
            ) as progress:
                task = progress.add_task("questions", total=len(asked) * len(MODES))

                async def search(query: str, mode: str, n: int) -> list[str]:
                    chosen = cast(Mode, mode)  # evaluate asks MODES only
                    found = await opened.retriever.search(query, max(n, k), chosen)
                    progress.advance(task)
                    return [p.id for p in found.passages]

                for name in splits:
                    progress.update(task, description=f"{name} questions")
                    reports.append(await evaluate(search, questions, MODES, name))
            return reports, version.name, []

    reports, version, missing = run_async(go)
    if not version:
        err.print(NOTHING_INDEXED)
        raise typer.Exit(1)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        err.print(
            f"index {version} lacks {len(missing)} document(s) the question set names: {shown}; "
            "ingest the shipped knowledge base with `podium ingest docs agents/data/kb` "
            "(with `podium run kb` running)"
        )
        raise typer.Exit(1)
    if as_json:
        print(
            json.dumps(
                {
                    "index": version,
                    "splits": {
                        r.split: {
                            s.mode: {
                                "recall_at_5": s.recall_at_5,
                                "mrr_at_10": s.mrr_at_10,
                                "questions": s.count,
                                "missed": list(s.missed),
                            }
                            for s in r.scores
                        }
                        for r in reports
                    },
                }
            )
        )
        return
    for report in reports:
        console.print(render(report, f"retrieval on the {report.split} split, index {version}"))
