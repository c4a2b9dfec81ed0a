"""Who a client is to the broker: the SCRAM user names (Kafka principals ``User:<name>``).

One user per stage, so ACLs can grant a stage exactly the topics and group it uses (the acls
commands) and a stage's credentials cannot write where another stage writes; ``podium-worker``
for what a worker process shares between its stages (the gateway's caches and circuits, a
pipeline's publishers, its spans): no super user, only the topics its stages and the catalog's
``podium.*`` topics hold; one super user, ``podium``, for the commands that manage the cluster
(topics, ACLs, admin, serve, the CLI).
"""

from __future__ import annotations

import re

from streams.errors import ConfigError

__all__ = ["PODIUM", "STAGE_PREFIX", "WORKER", "kafka_principal", "stage_principal"]

#: The super user of the local secured broker: admin, serve and the CLI.
PODIUM = "podium"
#: What a worker process's shared clients authenticate as (see the module's docstring).
WORKER = "podium-worker"
STAGE_PREFIX = "stage-"

# SCRAM user names are written into `kafka-storage format --add-scram 'SCRAM-SHA-512=[name=...]'`
# and into ACL principals: ',', '=', '[', ']' and spaces would need escaping in one or the other,
# so a name that could not round-trip is refused here rather than failing at the broker.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def stage_principal(stage_name: str) -> str:
    """The SCRAM user (and ACL principal name) a stage's worker authenticates as."""
    if not _NAME.fullmatch(stage_name):
        raise ConfigError(
            f"stage name {stage_name!r} cannot be a Kafka user name: use letters, digits, '.', '_' or '-'"
        )
    return f"{STAGE_PREFIX}{stage_name}"


def kafka_principal(user: str) -> str:
    """The principal an ACL or ``super.users`` names for a SCRAM user."""
    return f"User:{user}"
