"""``podium keys create | list | revoke``: the API keys ``podium serve`` lets in (kept hashed in
``PODIUM_API_KEYS_FILE``, else ``PODIUM_HOME/keys.json``; a key is shown once, when made)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from streams.cli.base import app, console, err, guard, load_project, when

keys_app = typer.Typer(help="API keys of the HTTP gateway (podium serve).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant every request made with the key is for.")],
    pipelines: Annotated[
        str | None, typer.Option(help="The pipelines it may call, comma separated (default: all).")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="At most this many requests: N/s, N/min or N/h (default: no limit).")
    ] = None,
    burst: Annotated[
        int | None, typer.Option(help="Requests at once above the rate (default: one second's worth).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="At most this many requests in flight (default: no limit).")
    ] = None,
) -> None:
    """Make a key and print it ONCE: the file keeps only its hash."""
    from streams.ingress.keys import KeyFile, Limits, parse_rate

    project = load_project()
    chosen = None if pipelines is None else [p.strip() for p in pipelines.split(",") if p.strip()]
    known = project.pipelines.names()
    unknown = sorted(set(chosen or ()) - set(known))
    if known and unknown:
        err.print(f"[red]error:[/] --pipelines names {', '.join(known)}, not {', '.join(unknown)}")
        raise typer.Exit(2)
    limits = guard(
        lambda: Limits(
            rate_per_s=None if rate is None else parse_rate(rate), burst=burst, concurrency=concurrency
        )
    )
    keys = KeyFile(project.settings.keys_path)
    entry, secret = guard(lambda: keys.create(tenant, chosen, limits))
    err.print(
        f"key {entry.id} for tenant {entry.tenant} written to {keys.path}; the key (shown only now):",
        highlight=False,
    )
    # The key alone on stdout, so `KEY=$(podium keys create ...)` takes it and nothing else.
    print(secret.get_secret_value(), flush=True)


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every key's id, tenant, pipelines, limits, when made and revoked (never the key)."""
    from streams.ingress.keys import KeyFile

    project = load_project()
    keys = guard(KeyFile(project.settings.keys_path).keys)
    if as_json:
        for key in keys:
            shown = key.as_json()
            del shown["hash"]
            print(json.dumps(shown))
        return
    table = Table("id", "tenant", "pipelines", "rate", "concurrency", "created", "revoked")
    for key in keys:
        limits = key.limits
        rate = "" if limits.rate_per_s is None else f"{limits.rate_per_s:g}/s (burst {limits.capacity:g})"
        table.add_row(
            key.id,
            key.tenant,
            "all" if key.pipelines is None else ", ".join(key.pipelines),
            rate,
            "" if limits.concurrency is None else str(limits.concurrency),
            when(key.created_ms),
            "" if key.revoked_ms is None else when(key.revoked_ms),
        )
    console.print(table)
    if not keys:
        console.print(f"no keys in {project.settings.keys_path}: `podium keys create --tenant T` makes one")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (`podium keys list`).")]) -> None:
    """Refuse the key from the next request on (a running `podium serve` rereads the file)."""
    from streams.ingress.keys import KeyFile

    project = load_project()
    entry = guard(lambda: KeyFile(project.settings.keys_path).revoke(key_id))
    assert entry.revoked_ms is not None
    console.print(f"key {entry.id} of tenant {entry.tenant} revoked at {when(entry.revoked_ms)}")
