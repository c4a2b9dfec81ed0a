"""The ACL plan and its diff without I/O; the plaintext broker (no authorizer) says what to do.

The proof that the ACLs hold (a stage refused where it does not produce) needs the secured
broker: tests/streams/kafka/test_acls_secured.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import BrokerError, ConfigError
from streams.kafka.acls import (
    Acl,
    AclAdmin,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    StageAccess,
    diff_acls,
    plan_acls,
)
from streams.kafka.connection import Cluster
from tests.streams.running import podium

CLASSIFY = StageAccess(
    "classify",
    "podium.classify",
    reads=("support.requests", "support.requests.retry"),
    writes=("support.rag", "support.requests.retry", "support.requests.dlq"),
)


def topic(principal: str, name: str, operation: Operation) -> Acl:
    return Acl(f"User:{principal}", ResourceType.TOPIC, name, operation)


def test_a_stage_may_read_what_it_consumes_and_its_group_and_write_what_it_produces_nothing_more() -> None:
    acls = plan_acls([CLASSIFY])
    assert set(acls) == {
        topic("stage-classify", "support.requests", Operation.READ),
        topic("stage-classify", "support.requests.retry", Operation.READ),
        topic("stage-classify", "support.rag", Operation.WRITE),
        topic("stage-classify", "support.requests.retry", Operation.WRITE),
        topic("stage-classify", "support.requests.dlq", Operation.WRITE),
        Acl("User:stage-classify", ResourceType.GROUP, "podium.classify", Operation.READ),
    }
    # Literal names, any host, allow only; no cluster-wide grant (IDEMPOTENT_WRITE is not needed
    # since KIP-679) and no DESCRIBE (implied by READ and WRITE).
    assert {(a.pattern, a.host, a.permission) for a in acls} == {(PatternType.LITERAL, "*", Permission.ALLOW)}
    assert not [
        a for a in acls if a.resource_type == ResourceType.CLUSTER or a.operation == Operation.DESCRIBE
    ]
    assert acls == sorted(acls) and len(acls) == len(set(acls))


def test_stages_sharing_a_name_share_a_principal_and_each_stage_gets_its_own() -> None:
    other = StageAccess("screen", "podium.screen", ("support.drafts",), ("support.responses",))
    twice = StageAccess("classify", "podium.classify", ("support.requests",), ("support.direct",))
    acls = plan_acls([CLASSIFY, other, twice])
    assert {a.principal for a in acls} == {"User:stage-classify", "User:stage-screen"}
    assert topic("stage-classify", "support.direct", Operation.WRITE) in acls
    assert topic("stage-classify", "support.responses", Operation.WRITE) not in acls
    assert topic("stage-screen", "support.responses", Operation.WRITE) in acls
    with pytest.raises(ConfigError, match="cannot be a Kafka user name"):
        plan_acls([StageAccess("no spaces", "g", ("a",), ("b",))])


def test_the_diff_creates_what_is_missing_and_prunes_only_stage_principals_when_asked() -> None:
    wanted = plan_acls([CLASSIFY])
    stale = topic("stage-classify", "support.direct", Operation.WRITE)  # the stage no longer does
    gone = topic("stage-retired", "x", Operation.READ)  # a stage no pipeline has any more
    alice = topic("alice", "support.requests", Operation.READ)  # set by hand: never touched
    # Wider than the plan's, but not the plan's own: the exact ACL is still created.
    prefixed = Acl(
        "User:stage-classify", ResourceType.TOPIC, "support.", Operation.READ, pattern=PatternType.PREFIXED
    )
    existing = {wanted[0], stale, gone, alice, prefixed}

    changes = diff_acls(wanted, existing)
    assert changes.create == tuple(wanted[1:]) and changes.present == (wanted[0],)
    assert changes.delete == () and set(changes.extra) == {stale, gone, prefixed}
    pruned = diff_acls(wanted, existing, prune=True)
    assert set(pruned.delete) == {stale, gone, prefixed} and pruned.extra == ()
    assert alice not in pruned.delete
    # A DENY someone set is never pruned, and is shown when it names a planned principal.
    deny = Acl("User:stage-classify", ResourceType.TOPIC, "support.rag", Operation.WRITE, Permission.DENY)
    retired_deny = Acl("User:stage-retired", ResourceType.TOPIC, "x", Operation.READ, Permission.DENY)
    with_denies = diff_acls(wanted, existing | {deny, retired_deny}, prune=True)
    assert with_denies.delete == pruned.delete and with_denies.denied == (deny,)
    # A plan of some stages prunes their principals' ACLs alone.
    scoped = diff_acls(wanted, existing, prune=True, scope={"User:stage-classify"})
    assert set(scoped.delete) == {stale, prefixed}
    assert (
        diff_acls(wanted, wanted) == diff_acls(wanted, set(wanted)) and not diff_acls(wanted, wanted).create
    )


def test_an_acl_reads_as_kafka_acls_would_list_it() -> None:
    assert str(topic("stage-a", "t", Operation.WRITE)) == "ALLOW User:stage-a WRITE TOPIC t"
    odd = Acl("User:x", 9, "p.", 42, Permission.DENY, PatternType.PREFIXED, "10.0.0.1")
    assert odd.row() == ("User:x", "UNKNOWN(42)", "UNKNOWN(9) (PREFIXED)", "p.", "DENY from 10.0.0.1")


async def test_a_broker_without_an_authorizer_is_named_with_what_to_start_instead(bootstrap: str) -> None:
    async with AclAdmin(Cluster(bootstrap)) as admin:
        with pytest.raises(
            BrokerError, match=r"has no authorizer .* `podium broker start --security sasl_ssl`"
        ):
            await admin.existing()
        with pytest.raises(BrokerError, match="has no authorizer"):
            await admin.apply(plan_acls([CLASSIFY]))


def test_the_plan_command_needs_no_cluster_and_apply_says_why_it_cannot(
    bootstrap: str, tmp_path: Path
) -> None:
    home = {"PODIUM_HOME": str(tmp_path), "COLUMNS": "200"}
    planned = podium("acls", "plan", "demo", env={**home, "KAFKA_BOOTSTRAP_SERVERS": ""})
    assert planned.returncode == 0, planned.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in planned.stdout.splitlines()]
    assert ["User:stage-stamp", "WRITE", "TOPIC", "demo.stamped", "ALLOW"] in rows
    assert ["User:stage-stamp", "READ", "GROUP", "podium.stamp", "ALLOW"] in rows
    # Each stage: READ its input and retry topic and group, WRITE its output, retry and DLQ.
    assert "12 ACL(s) for 2 stage principal(s)" in planned.stdout
    assert ["User:podium-worker", "WRITE", "TOPIC", "podium.telemetry", "ALLOW"] in rows
    applied = podium("acls", "apply", "demo", env={**home, "KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    assert applied.returncode == 2 and "has no authorizer" in applied.stderr
