"""``podium approve`` and ``podium approvals``: a person's yes or no to the actions agents ask
approval for, and what is waiting (read from the catalog's approval topics)."""

from __future__ import annotations

import json
import os
import pwd
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from streams.cli.base import app, console, guard, load_project, run_async, when

if TYPE_CHECKING:
    from streams.ingress.approvals import Approval


def os_user() -> str:
    """The account running the command, from the system's user database (not the environment,
    which only :mod:`streams.config` reads)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without an entry, as in some containers
        return f"uid {os.getuid()}"


@app.command("approve")
def approve(
    request_id: Annotated[str, typer.Argument(help="The request whose action waits (`podium approvals`).")],
    deny: Annotated[bool, typer.Option("--deny", help="Deny instead of approving.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the agent and the record.")] = "",
    call: Annotated[
        str | None, typer.Option("--call", help="Decide only this call (default: every waiting call).")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who decides (default: the OS user).")] = None,
) -> None:
    """Approve (or --deny) what a request waits for: one decision per waiting call, acknowledged
    by Kafka; prints each action and its arguments."""
    from streams.ingress.approvals import Approvals
    from streams.ingress.publish import Publisher

    project = load_project()
    cluster = guard(project.cluster)
    catalog = guard(lambda: project.catalog)
    decider = by if by is not None else os_user()

    async def go() -> list[Approval]:
        async with (
            Publisher(cluster=cluster, catalog=catalog, codec=project.codec) as publisher,
            Approvals(cluster=cluster, catalog=catalog, codec=project.codec, publisher=publisher) as desk,
        ):
            return await desk.decide(request_id, not deny, reason=reason, by=decider, call_id=call)

    for approval in run_async(go):
        verb = "[red]denied[/]" if deny else "[green]approved[/]"
        console.print(
            f"{verb} {escape(approval.action)} {escape(approval.arguments)}  "
            f"(request {escape(approval.request_id)}, call {escape(approval.call_id)}, "
            f"{escape(approval.pipeline)}) by {escape(decider)}"
        )


@app.command("approvals")
def list_approvals(
    every: Annotated[bool, typer.Option("--all", help="Decided and expired ones too, and how.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """What waits for a person's decision: request id, pipeline, action, arguments, summary, time left."""
    from streams.contracts.headers import now_ms
    from streams.ingress.approvals import Approvals

    project = load_project()
    cluster = guard(project.cluster)
    catalog = guard(lambda: project.catalog)

    async def go() -> list[Approval]:
        async with Approvals(cluster=cluster, catalog=catalog, codec=project.codec) as desk:
            return await (desk.approvals() if every else desk.pending())

    found = run_async(go)
    at = now_ms()
    if as_json:
        for approval in found:
            print(json.dumps(approval.view(at)), flush=True)
        return
    if not found:
        console.print("nothing waits for a decision" + ("" if every else " (--all shows decided ones)"))
        return
    table = Table("request id", "call", "pipeline", "action", "arguments", "summary", "time left")
    if every:
        table.add_column("decision")
    for approval in found:
        state = approval.state(at)
        left = _left(approval.expires_ms - at) if state == "pending" else "-"
        row = [
            approval.request_id,
            approval.call_id,
            approval.pipeline,
            approval.action,
            approval.arguments,
            approval.summary,
            left,
        ]
        table.add_row(*(escape(cell) for cell in row), *([_decision(approval, at)] if every else []))
    console.print(table)


def _left(ms: int) -> str:
    seconds = max(0, ms // 1000)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _decision(approval: Approval, at: int) -> str:
    state = approval.state(at)
    if state == "pending":
        return "waiting"
    if state == "expired":
        return f"expired {when(approval.expires_ms)} (denied)"
    assert approval.decision is not None
    reason = f": {approval.decision.reason}" if approval.decision.reason else ""
    colour = "green" if state == "approved" else "red"
    who = escape(approval.decision.by or "unnamed")
    return f"[{colour}]{state}[/] by {who} {when(approval.decision.at_ms)}{escape(reason)}"
