"""``podium approve`` and ``podium approvals`` run as a person runs them, on the real broker: an
agent's requests on billing.approvals, the decisions read back from billing.decisions."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess

import pytest

from streams.config import Settings
from streams.kafka.connection import Cluster
from streams.runtime.project import Project
from tests.streams.asking import agent_decides, approvals_project, ask, asked, decisions_of
from tests.streams.running import podium


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, cluster: Cluster) -> Project:
    return await approvals_project(broker_settings, cluster)


async def run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": project.cluster().bootstrap, "COLUMNS": "300"}
    return await asyncio.to_thread(podium, *args, env=env)


def row_of(table: str, request_id: str) -> dict[str, str]:
    """One row of a rich table as {column: text}, its wrapped lines joined."""
    lines = [
        line.strip("│┃").split("│" if "│" in line else "┃")
        for line in table.splitlines()
        if "┃" in line or "│" in line
    ]
    header = [cell.strip() for cell in lines[0]]
    rows: list[list[str]] = []
    for cells in lines[1:]:
        if cells[0].strip():  # a new row; an empty first cell continues the one above
            rows.append([cell.strip() for cell in cells])
        else:
            rows[-1] = [f"{a} {b.strip()}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return next(dict(zip(header, row, strict=True)) for row in rows if row[0] == request_id)


async def test_approve_prints_what_it_approved_and_a_second_decision_names_the_first(
    project: Project, unique: str
) -> None:
    rid = f"{unique}-r1"  # short, so the table shows it whole
    await ask(project, asked(rid, "c1", arguments={"invoice": "in_7"}))

    listed = await run(project, "approvals", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [json.loads(line) for line in listed.stdout.splitlines() if json.loads(line)["request_id"] == rid]
    assert [(m["call_id"], m["action"], m["arguments"], m["state"]) for m in mine] == [
        ("c1", "issue_refund", '{"invoice": "in_7"}', "pending")
    ]
    assert 290 < mine[0]["left_s"] <= 300
    table = row_of((await run(project, "approvals")).stdout, rid)
    assert (table["call"], table["pipeline"], table["arguments"]) == ("c1", "billing", '{"invoice": "in_7"}')
    assert table["summary"] == "refund $20 on in_42 (c1)" and table["time left"].startswith(("4m", "5m"))

    approved = await run(project, "approve", rid, "--by", "ana", "--reason", "checked the invoice")
    assert approved.returncode == 0, approved.stderr
    assert (
        f'approved issue_refund {{"invoice": "in_7"}}  (request {rid}, call c1, billing) by ana'
        in approved.stdout
    )
    [(key, decision)] = await decisions_of(project, rid)
    assert key == rid
    assert {k: decision[k] for k in ("request_id", "call_id", "approved", "reason", "by")} == {
        "request_id": rid,
        "call_id": "c1",
        "approved": True,
        "reason": "checked the invoice",
        "by": "ana",
    }

    again = await run(project, "approve", rid, "--deny", "--by", "bo")
    assert again.returncode == 2
    assert (
        f"error: {rid} was approved by ana at" in again.stderr and "the first decision stands" in again.stderr
    )
    assert len(await decisions_of(project, rid)) == 1

    pending = await run(project, "approvals", "--json")
    assert rid not in pending.stdout
    every = await run(project, "approvals", "--all")
    row = row_of(every.stdout, rid)
    assert row["action"] == "issue_refund" and row["time left"] == "-"
    assert row["decision"].startswith("approved by ana ") and row["decision"].endswith(
        ": checked the invoice"
    )


async def test_deny_one_call_then_approve_the_rest_as_the_os_user(project: Project, unique: str) -> None:
    rid = f"{unique}-r2"
    await ask(project, asked(rid, "c1"), asked(rid, "c2", action="close_account"))
    denied = await run(
        project, "approve", rid, "--deny", "--call", "c2", "--reason", "not over chat", "--by", "bo"
    )
    assert denied.returncode == 0, denied.stderr
    assert "denied close_account" in denied.stdout and "call c2" in denied.stdout
    assert "call c1" not in denied.stdout

    rest = await run(project, "approve", rid)
    assert rest.returncode == 0, rest.stderr
    assert "approved issue_refund" in rest.stdout and "call c1" in rest.stdout
    on_topic = [
        (d["call_id"], d["approved"], d["reason"], d["by"]) for _, d in await decisions_of(project, rid)
    ]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert on_topic == [("c2", False, "not over chat", "bo"), ("c1", True, "", me)]


async def test_unknown_expired_and_unknown_call_exit_non_zero_saying_what_to_do(
    project: Project, unique: str
) -> None:
    late, timed_out, rid = f"{unique}-late", f"{unique}-tmo", f"{unique}-r3"
    await ask(project, asked(late, "c1", expires_in_s=-5), asked(timed_out, "c1"), asked(rid, "c1"))
    await agent_decides(project, timed_out, "c1")

    unknown = await run(project, "approve", f"{unique}-nope")
    assert unknown.returncode == 2
    assert f"no approval was asked for request {unique}-nope: check the id" in unknown.stderr
    for expired_id in (late, timed_out):
        expired = await run(project, "approve", expired_id)
        assert expired.returncode == 2
        assert f"{expired_id} timed out at" in expired.stderr and "the agent denied it" in expired.stderr
    wrong_call = await run(project, "approve", rid, "--call", "c9")
    assert wrong_call.returncode == 2 and "asked no approval for call c9: name one of c1" in wrong_call.stderr
    assert await decisions_of(project, late) == [] and await decisions_of(project, rid) == []

    every = await run(project, "approvals", "--all", "--json")
    states = {v["request_id"]: v["state"] for v in map(json.loads, every.stdout.splitlines())}
    assert (states[late], states[timed_out], states[rid]) == ("expired", "expired", "pending")
