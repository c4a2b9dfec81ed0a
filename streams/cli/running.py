"""``podium run``, ``up``, ``serve`` and ``demo``: stage workers, the whole stack, the HTTP gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    project_for,
    run_async,
    stages_of,
    telemetry_for,
)
from streams.ingress.server import ClientLimits
from streams.operations.audit import pipeline_topics
from streams.runtime.pipeline import Pipeline
from streams.runtime.project import Project
from streams.runtime.stack import Stack, ensure_broker, release_broker
from streams.runtime.stage import Stage
from streams.runtime.tuning import tune_worker_process
from streams.runtime.workers import worker_for


@app.command("run")
def run(
    targets: Annotated[list[str], typer.Argument(help="Stage, pipeline or module:attribute.")],
    max_in_flight: Annotated[int | None, typer.Option(help="Override each stage's in-flight limit.")] = None,
) -> None:
    """Run stage workers until SIGTERM/SIGINT; then drain in-flight work and commit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    project = load_project()
    stages = stages_of(project, targets)

    guard(lambda: tune_worker_process(project.settings.event_loop))

    async def go() -> None:
        # The process's own clients (spans, the stages' shared resources) are podium-worker's;
        # each stage's consumer and producer its own principal's.
        shared = project.as_worker()
        telemetry = telemetry_for(
            project, "podium-worker", shared, prometheus_port=project.settings.metrics_port
        )
        workers = [
            worker_for(
                s,
                cluster=shared,
                as_stage=project.as_stage(s.name),
                catalog=project.catalog,
                codec=project.codec,
                telemetry=telemetry,
                max_in_flight=max_in_flight,
                tenant_weights=project.settings.tenant_weights,
            )
            for s in stages
        ]
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            for worker in workers:
                worker.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        for worker in workers:
            await worker.start()
        print(
            f"podium: running {', '.join(s.name for s in stages)}; metrics on "
            f"http://127.0.0.1:{telemetry.metrics_port}/metrics",
            flush=True,
        )
        try:
            await asyncio.gather(*(w.run() for w in workers))
        finally:
            telemetry.shutdown()

    run_async(go)


PROVIDER_HELP = "Which models: a model setup the entry point registered (podium: local or sim)."


def _model_setup(project: Project, provider: str) -> AbstractContextManager[None]:
    """What ``--provider`` starts around the stages (the simulator for ``sim``), if anything."""
    setup = guard(lambda: project.pipelines.setup(provider))
    return setup.start(console) if setup.start is not None else contextlib.nullcontext()


def _running(project: Project, targets: list[str], stages: list[Stage[Any]]) -> list[Pipeline]:
    """The registered pipelines a selection of targets runs stages of (resolving the targets
    built each of them already)."""
    names = set(targets) | set(project.built_pipelines_of(stages))
    return [p for p in project.pipelines if p.name in names]


@app.command("up")
def up(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Pipelines or stages (default: every registered pipeline).")
    ] = None,
    provider: Annotated[str, typer.Option(help=PROVIDER_HELP)] = "local",
    keep_broker: Annotated[bool, typer.Option(help="Leave a broker this command started running.")] = False,
) -> None:
    """Start everything (broker, topics, stages) and keep it running until Ctrl-C."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    project = project_for(provider)
    chosen = targets or project.pipelines.defaults()
    stages = stages_of(project, chosen)
    if not stages:
        err.print("[red]error:[/] nothing to run: name a pipeline, a stage or module:attribute")
        raise typer.Exit(2)
    guard(lambda: tune_worker_process(project.settings.event_loop))
    hints = "".join(f"  {p.try_it}\n" for p in _running(project, chosen, stages) if p.try_it)

    async def go() -> None:
        with _model_setup(project, provider):
            stack = Stack(
                project,
                stages,
                echo=console.print,
                service_name="podium-up",
                metrics_port=project.settings.metrics_port,
                keep_broker=keep_broker,
            )
            async with stack:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stack.request_stop)
                console.print(
                    f"[green]up[/]: {len(stages)} stage(s): {', '.join(s.name for s in stages)}; metrics on "
                    f"http://127.0.0.1:{stack.metrics_port}/metrics. In another terminal:\n{hints}"
                    "  podium tail <topic>    podium trace <request-id>    podium dlq list\n"
                    "Ctrl-C drains in-flight work, commits and stops.",
                    highlight=False,
                    soft_wrap=True,
                )
                await stack.wait()

    run_async(go)


@app.command("serve")
def serve(
    pipelines: Annotated[
        list[str] | None, typer.Argument(help="Pipelines to front (default: the ones registered as served).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    publish_timeout: Annotated[
        float, typer.Option(help="Seconds before an unacknowledged publish is a 503.")
    ] = 5.0,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Let every caller in without a credential, under any tenant (a gateway behind "
            "a proxy that authenticates, or a laptop).",
        ),
    ] = False,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest request body a pipeline reads (default: 3x what its topic accepts).", min=1
        ),
    ] = None,
    head_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a request's headers (then 408).", min=0.1)
    ] = ClientLimits.head_timeout_s,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a request's body (then 408).", min=0.1)
    ] = ClientLimits.body_timeout_s,
) -> None:
    """The HTTP gateway: POST /v1/<pipeline>/requests publishes and waits; GET /v1/requests/<id>;
    GET /v1/approvals and POST /v1/approvals/<request-id> decide what agents wait for. Callers
    need an API key (`podium keys create`) or, with PODIUM_JWT_JWKS, a JWT."""
    import uvicorn

    from streams.ingress.auth import Authenticator
    from streams.ingress.http import Entry, create_app
    from streams.ingress.server import server_config

    project = load_project()
    entries = []
    for name in pipelines or project.pipelines.served():
        input_topic, terminal = guard(lambda name=name: pipeline_topics(project.build(name), project.catalog))  # type: ignore[misc]
        # A pipeline streams tokens when the catalog has a chunk topic under its name.
        stream_topic = next(
            (
                t.name
                for t in project.catalog
                if t.value_schema == "podium.StreamChunk" and t.name.startswith(f"{name}.")
            ),
            None,
        )
        entries.append(Entry(name, input_topic, tuple(terminal), stream_topic))
    if not entries:
        err.print("[red]error:[/] no pipeline to front: name one (no registered pipeline is served)")
        raise typer.Exit(2)
    # Refused rather than served open: a gateway nobody can call, or everybody, is a mistake
    # unless it is said out loud (--insecure-no-auth).
    auth = (
        Authenticator.open()
        if insecure_no_auth
        else guard(lambda: Authenticator.from_settings(project.settings))
    )
    if (why := guard(auth.ready)) is not None:
        err.print(f"[red]error:[/] {why}")
        raise typer.Exit(2)
    cluster = guard(project.cluster)
    telemetry = telemetry_for(project, "podium-serve")
    app_ = create_app(
        project,
        entries,
        cluster=cluster,
        auth=auth,
        publish_timeout_s=publish_timeout,
        telemetry=telemetry,
        max_body_bytes=max_body_bytes,
    )
    limits = ClientLimits(head_timeout_s=head_timeout, body_timeout_s=body_timeout)
    console.print(f"podium serve: http://{host}:{port}/docs (OpenAPI), Kafka at {cluster}")
    if insecure_no_auth:
        err.print(
            "[yellow]warning:[/] --insecure-no-auth: anyone who reaches the port calls under any tenant"
        )
    try:
        uvicorn.Server(server_config(app_, host=host, port=port, limits=limits)).run()
    finally:
        telemetry.shutdown()


@app.command("demo")
def demo(
    provider: Annotated[
        str,
        typer.Option(help=PROVIDER_HELP + " sim shows retries and fallbacks against injected faults."),
    ] = "local",
    pipelines: Annotated[
        str | None,
        typer.Option(help="Which pipelines, comma separated (default: every registered pipeline)."),
    ] = None,
    reports: Annotated[
        Path, typer.Option(help="Folder for what the demos write: articles, reports, charts (a run each).")
    ] = Path("reports"),
) -> None:
    """The pipelines end to end on the bundled samples: broker, topics, stages, where each
    request ended; what a demo writes (articles, reports with charts) goes to a folder."""
    project = project_for(provider)
    shown = [p for p in project.pipelines if p.demo is not None]
    names = [p.name for p in shown]
    if not names:
        err.print("[red]error:[/] no registered pipeline has a demo (run `podium`, not the bare runtime)")
        raise typer.Exit(2)
    chosen = (
        [p.strip() for p in pipelines.split(",") if p.strip()]
        if pipelines
        else [n for n in project.pipelines.defaults() if n in names]
    )
    unknown = set(chosen) - set(names)
    if unknown or not chosen:
        err.print(f"[red]error:[/] --pipelines names {', '.join(names)}, not {sorted(unknown)}")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.WARNING)
    folder = reports.resolve() / time.strftime("%Y%m%d-%H%M%S")

    async def all_pipelines() -> int:
        code = 0
        # One broker for every pipeline: started here when none runs, stopped at the end.
        started = await ensure_broker(project, console.print)
        try:
            with _model_setup(project, provider):
                for pipeline in shown:
                    if pipeline.name in chosen and pipeline.demo is not None:
                        console.rule(f"{pipeline.name}: {pipeline.summary}")
                        code |= await pipeline.demo(project, console, folder / pipeline.name)
        finally:
            release_broker(project, started, console.print)
        if any(folder.joinpath(name).exists() for name in chosen):
            console.print(f"[bold]reports written to {folder}[/]")
        return code

    raise typer.Exit(run_async(all_pipelines))
