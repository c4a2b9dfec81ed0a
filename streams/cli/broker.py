"""``podium broker``: the local Apache Kafka broker (KRaft, one node)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from streams.cli.base import (
    app,
    console,
    err,
    guard,
    load_project,
    run_async,
)
from streams.kafka.broker_security import SecurityMode

broker_app = typer.Typer(help="The local Apache Kafka broker (KRaft, one node).", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


class Security(StrEnum):
    plaintext = "plaintext"
    sasl_ssl = "sasl_ssl"


@broker_app.command("start")
def broker_start(
    security: Annotated[
        Security | None,
        typer.Option(
            "--security",
            help="plaintext, or sasl_ssl: TLS with a CA of its own, a SCRAM-SHA-512 user for podium "
            "and each stage, ACLs enforced. Default: the mode of the last start (plaintext at first).",
        ),
    ] = None,
) -> None:
    """Fetch (once), format (once) and start the local broker; returns when it answers."""
    project = load_project()
    if project.settings.bootstrap_servers:
        console.print(
            f"KAFKA_BOOTSTRAP_SERVERS is set ({project.settings.bootstrap_servers}): no local broker needed"
        )
        return
    mode: SecurityMode | None = None if security is None else security.value
    state = run_async(lambda: project.start_broker(mode, echo=console.print))
    console.print(
        f"Kafka {state.version} is up at [bold]{state.bootstrap}[/] "
        f"(pid {state.pid}, data {project.broker.data_dir})"
    )
    if state.security == "sasl_ssl":
        material = project.broker.security
        console.print(
            f"secured: SASL_SSL, SCRAM-SHA-512, ACLs enforced; CA {material.ca_file}; "
            f"{len(state.scram_users)} users (podium is the super user; passwords in "
            f"{material.users_file}). podium's commands reach it as podium with nothing to set."
        )


@broker_app.command("fetch")
def broker_fetch() -> None:
    """Download the broker's jars from Maven Central (once per version; cached)."""
    project = load_project()
    libs = guard(lambda: project.broker.fetch(echo=console.print))
    console.print(f"Kafka {project.settings.kafka_version} jars ready in {libs}")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker (controlled shutdown; data is kept)."""
    project = load_project()
    stopped = guard(project.broker.stop)
    console.print("broker stopped" if stopped else "no local broker was running")


@broker_app.command("reset")
def broker_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deleting all topics.")] = False,
) -> None:
    """Stop the local broker and delete its data (every topic and offset)."""
    if not yes:
        err.print("this deletes every topic of the local broker; run again with --yes")
        raise typer.Exit(2)
    project = load_project()
    project.broker.reset()
    console.print(f"deleted {project.broker.dir}")


@broker_app.command("status")
def broker_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Bootstrap address, version, data dir, pid and topics."""
    from streams.kafka.broker import wait_for_metadata

    project = load_project()
    settings = project.settings
    info: dict[str, Any]
    if settings.bootstrap_servers:
        info = {"mode": "external", "bootstrap": settings.bootstrap_servers}
    else:
        state = guard(project.broker.state)
        live = guard(project.broker.running)
        info = {
            "mode": "local",
            "running": live is not None,
            "bootstrap": state.bootstrap if state else None,
            "version": state.version if state else settings.kafka_version,
            "data_dir": str(project.broker.data_dir),
            "pid": live.pid if live else None,
            "security": state.security if state else "plaintext",
        }
        if state is not None and state.security == "sasl_ssl":
            # Names and paths only: the passwords stay in users.json.
            info["ca_file"] = str(project.broker.security.ca_file)
            info["users"] = state.scram_users
    if info.get("mode") == "external" or info.get("running"):
        cluster = guard(project.cluster)
        info["topics"] = run_async(lambda: wait_for_metadata(cluster, 10))
    if as_json:
        console.print_json(json.dumps(info))
        return
    for key, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"[bold]{key:10}[/] {shown}")
    if info.get("mode") == "local" and not info["running"]:
        raise typer.Exit(1)


@broker_app.command("logs")
def broker_logs(
    lines: Annotated[int, typer.Option("-n", "--lines")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """The local broker's server log."""

    project = load_project()
    console.print(project.broker.tail(lines), markup=False, highlight=False)
    path = project.broker.log_dir / "server.log"
    if follow and path.exists():
        with path.open() as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        console.print(line.rstrip(), markup=False, highlight=False)
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return
