"""Least privilege from the catalog: the ACLs each stage's principal needs, and making them so.

What a stage does on Kafka follows from its declaration (:class:`StageAccess`, made by
:func:`streams.runtime.access.stage_access`); :func:`plan_acls` turns that into ACLs without I/O:

- READ on every topic it consumes (its input, the input's retry topic, its extra topics, the
  compacted state it writes and reads back) and READ on its consumer group (join, heartbeat,
  commit; OffsetFetch needs DESCRIBE, implied).
- WRITE on every topic it produces to (its outputs, the retry and dead-letter topics).
- Nothing else. Kafka's authorizer lets READ and WRITE imply DESCRIBE (metadata, offsets, the
  partition counts a keyed stage compares), so no DESCRIBE ACL is written beside them.
  The workers' idempotent producers need no IDEMPOTENT_WRITE on the cluster: since Kafka 2.8
  (KIP-679) WRITE on a topic is enough for InitProducerId, and podium supports Kafka 3.9+.
  No worker uses a transactional id.

:class:`AclAdmin` reads the cluster's ACLs (DescribeAcls), creates the missing ones
(CreateAcls) and, only when asked to prune, deletes the ones of stage principals that the plan
no longer wants (DeleteAcls): ACLs of any other principal, and DENY ACLs, are never touched.
aiokafka's admin client has no ACL methods, so the requests are aiokafka's own protocol structs
sent through the admin client :meth:`Cluster.admin` makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from aiokafka.errors import ClusterAuthorizationFailedError, KafkaError, SecurityDisabled, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from streams.errors import BrokerError
from streams.kafka.connection import Cluster, start_admin
from streams.kafka.principals import STAGE_PREFIX, kafka_principal, stage_principal

__all__ = [
    "Acl",
    "AclAdmin",
    "AclChanges",
    "Operation",
    "PatternType",
    "Permission",
    "ResourceType",
    "StageAccess",
    "diff_acls",
    "plan_acls",
]


# The numbers are Kafka's own (org.apache.kafka.common.resource.ResourceType, acl.AclOperation,
# acl.AclPermissionType, resource.PatternType): they go on the wire as they are.
class ResourceType(IntEnum):
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class Permission(IntEnum):
    ANY = 1
    DENY = 2
    ALLOW = 3


class PatternType(IntEnum):
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"UNKNOWN({value})"


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding: ``principal`` may (or may not) do ``operation`` on a resource."""

    principal: str  # User:<name>
    resource_type: int  # ResourceType
    resource_name: str
    operation: int  # Operation
    permission: int = Permission.ALLOW
    pattern: int = PatternType.LITERAL
    host: str = "*"

    def row(self) -> tuple[str, str, str, str, str]:
        """For tables: principal, operation, resource type, resource name, permission."""
        resource = _name(ResourceType, self.resource_type)
        if self.pattern != PatternType.LITERAL:
            resource += f" ({_name(PatternType, self.pattern)})"
        return (
            self.principal,
            _name(Operation, self.operation),
            resource,
            self.resource_name,
            _name(Permission, self.permission) + ("" if self.host == "*" else f" from {self.host}"),
        )

    def __str__(self) -> str:
        principal, operation, kind, name, permission = self.row()
        return f"{permission} {principal} {operation} {kind} {name}"


@dataclass(frozen=True)
class StageAccess:
    """What one stage's worker does on Kafka: the topics it reads and writes and its group."""

    stage: str
    group: str  # "": reads without a consumer group (a process's followers and readers)
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    user: str | None = None  # not a stage's: the SCRAM user (the worker process's)

    @property
    def principal(self) -> str:
        return kafka_principal(self.user or stage_principal(self.stage))


def plan_acls(accesses: Iterable[StageAccess]) -> list[Acl]:
    """The ACLs the stages need, sorted and each once (two stages of one name, from two
    pipelines, share one principal: it gets what both need)."""
    wanted: set[Acl] = set()
    for access in accesses:
        principal = access.principal  # a ConfigError for a name that cannot be a Kafka user
        wanted.update(Acl(principal, ResourceType.TOPIC, t, Operation.READ) for t in access.reads)
        wanted.update(Acl(principal, ResourceType.TOPIC, t, Operation.WRITE) for t in access.writes)
        if access.group:
            wanted.add(Acl(principal, ResourceType.GROUP, access.group, Operation.READ))
    return sorted(wanted)


def _managed(acl: Acl, scope: Collection[str] | None) -> bool:
    """ACLs podium owns and may prune: those of stage principals (of ``scope``'s principals
    alone when given), nobody else's."""
    if scope is not None:
        return acl.principal in scope
    return acl.principal.startswith(kafka_principal(STAGE_PREFIX))


@dataclass(frozen=True)
class AclChanges:
    create: tuple[Acl, ...] = ()
    delete: tuple[Acl, ...] = ()
    # Stage principals' ACLs on the cluster that the plan does not want, left (no --prune).
    extra: tuple[Acl, ...] = ()
    present: tuple[Acl, ...] = field(default=(), repr=False)
    # DENY ACLs on the plan's principals: Kafka lets a DENY win over any ALLOW, so the stage may
    # be refused what the plan grants. Someone set them on purpose: never pruned, only shown.
    denied: tuple[Acl, ...] = ()


def diff_acls(
    wanted: Iterable[Acl],
    existing: Iterable[Acl],
    prune: bool = False,
    scope: Collection[str] | None = None,
) -> AclChanges:
    """What to create so the cluster has every wanted ACL; with ``prune``, which stage-principal
    ACLs to delete because no stage wants them. ``scope``: the principals the plan covers (a
    plan of some stages must not prune the others'); None: every stage principal, also of stages
    no pipeline has any more. An equivalent but different ACL (a prefixed pattern, another host)
    does not count as present: the plan writes exactly its own."""
    want, have = set(wanted), set(existing)
    unwanted = tuple(sorted(a for a in have - want if _managed(a, scope) and a.permission != Permission.DENY))
    principals = {a.principal for a in want}
    return AclChanges(
        create=tuple(sorted(want - have)),
        delete=unwanted if prune else (),
        extra=() if prune else unwanted,
        present=tuple(sorted(want & have)),
        denied=tuple(
            sorted(a for a in have if a.permission == Permission.DENY and a.principal in principals)
        ),
    )


# -- the requests: aiokafka's structs, several bindings in one request ----------------------
# aiokafka's CreateAclsRequest and DeleteAclsRequest send one binding each; these send all of
# them at once. Version 1 only: Kafka 4 removed version 0, and every supported broker has 1.
def _binding(acl: Acl) -> tuple[Any, ...]:
    return (
        acl.resource_type,
        acl.resource_name,
        acl.pattern,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission,
    )


class _DescribeAll(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 29

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        # Null name, principal and host with ANY type, pattern, operation, permission: every ACL.
        return request_struct_class(
            ResourceType.ANY, None, PatternType.ANY, None, None, Operation.ANY, Permission.ANY
        )


class _Create(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 30

    def __init__(self, acls: Sequence[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([_binding(a) for a in self._acls])


class _Delete(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 31

    def __init__(self, acls: Sequence[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        # A filter with every field set (LITERAL pattern) matches exactly that one binding.
        return request_struct_class([_binding(a) for a in self._acls])


class AclAdmin:
    """The cluster's ACLs through an admin client made by ``cluster``."""

    def __init__(self, cluster: Cluster, visible_within_s: float = 15.0) -> None:
        self._cluster = cluster
        self._client = cluster.admin(request_timeout_ms=15000, client_id="podium-acls")
        self._visible_within_s = visible_within_s

    async def __aenter__(self) -> AclAdmin:
        await start_admin(
            self._cluster,
            self._client,
            "start the local broker with `podium broker start --security sasl_ssl` "
            "or set KAFKA_BOOTSTRAP_SERVERS",
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.close()

    async def existing(self) -> set[Acl]:
        response = await self._send(_DescribeAll())
        self._check(response.error_code, response.error_message, "read the ACLs")
        return {
            Acl(principal, kind, name, operation, permission, pattern, host)
            for kind, name, pattern, bindings in response.resources
            for principal, host, operation, permission in bindings
        }

    async def apply(
        self, wanted: Sequence[Acl], prune: bool = False, scope: Collection[str] | None = None
    ) -> AclChanges:
        """Create the missing ACLs (and delete the unwanted ones of stage principals when
        ``prune``, see :func:`diff_acls`), then wait until the broker's authorizer shows the
        change: a worker started right after must not be refused by a broker that has not
        applied it yet."""
        changes = diff_acls(wanted, await self.existing(), prune, scope)
        if changes.create:
            response = await self._send(_Create(changes.create))
            for acl, (code, message) in zip(changes.create, response.creation_responses, strict=True):
                self._check(code, message, f"create {acl}")
        if changes.delete:
            response = await self._send(_Delete(changes.delete))
            for acl, (code, message, _matched) in zip(changes.delete, response.filter_responses, strict=True):
                self._check(code, message, f"delete {acl}")
        if changes.create or changes.delete:
            await self._until_visible(set(changes.create), set(changes.delete))
        return changes

    async def _until_visible(self, created: set[Acl], deleted: set[Acl]) -> None:
        # The controller has committed them when CreateAcls answers; a broker applies them from
        # its metadata log a moment later, and DescribeAcls answers from that broker's view.
        try:
            async with asyncio.timeout(self._visible_within_s):
                while True:
                    have = await self.existing()
                    if created <= have and not deleted & have:
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise BrokerError(
                f"the controller took the ACL changes but the broker at {self._cluster.bootstrap} did "
                f"not show them within {self._visible_within_s:.0f} s; run `podium acls apply` again "
                "to check (it changes nothing that is already there)"
            ) from None

    async def _send(self, request: Request[Any]) -> Any:
        try:
            # Any broker: one that is not the controller forwards ACL changes to it (KRaft).
            return await self._client._send_request(request)
        except KafkaError as exc:
            raise BrokerError(f"ACL request to {self._cluster.describe()} failed: {exc}") from exc

    def _check(self, code: int, message: str | None, doing: str) -> None:
        if not code:
            return
        error = for_code(code)
        if error is SecurityDisabled:
            raise BrokerError(
                f"cannot {doing}: {self._cluster.bootstrap} has no authorizer (the broker's "
                "authorizer.class.name is unset), so it keeps no ACLs; start the local broker "
                "with `podium broker start --security sasl_ssl`, or enable the StandardAuthorizer"
            )
        if error is ClusterAuthorizationFailedError:
            user = self._cluster.security.sasl_username or "this client"
            raise BrokerError(
                f"cannot {doing}: {user} may not manage ACLs on {self._cluster.bootstrap} (it needs "
                "ALTER and DESCRIBE on the cluster); run as a super user (KAFKA_SASL_USERNAME)"
            )
        raise BrokerError(f"cannot {doing}: {error.__name__} {message or ''}".rstrip())
