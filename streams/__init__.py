"""podium's stream runtime: the face a pipeline is written against.

The floors, lowest first (each imports only from the floors below it, enforced by the
import-linter contracts in ``pyproject.toml``)::

    errors, config   the one error tree; the one settings object (the only reader of the environment)
    contracts        topic catalog, Avro schemas and codec, headers
    kafka            local broker, admin, readers and followers
    telemetry        tracer and meter providers, trace context in headers, the span exporter
    runtime          stages, workers, windowed joins, tables, retry, project, stack
    ingress          publisher, HTTP gateway, replies
    operations       replay, what-if, redrive, audit, waterfall, report
    cli              the ``podium`` commands

Pipelines (``agents``) import these names, or a floor's own face (``streams.contracts``,
``streams.runtime``, ...), never a module inside a floor.
"""

from streams.config import Settings, load_settings
from streams.contracts import Catalog, Codec, RequestHeaders, TopicSpec, dlq_topic, now_ms, retry_topic
from streams.errors import (
    CodecError,
    ConfigError,
    DeadlineExceeded,
    PermanentError,
    PodiumError,
    TransientError,
)
from streams.ingress import Publisher
from streams.runtime import (
    Emit,
    Fairness,
    Project,
    Record,
    RetryPolicy,
    SharedResource,
    Stage,
    StageContext,
    StageEnv,
    Table,
    WindowStage,
    WindowState,
)
from streams.telemetry import Telemetry

__all__ = [
    "Catalog",
    "Codec",
    "CodecError",
    "ConfigError",
    "DeadlineExceeded",
    "Emit",
    "Fairness",
    "PermanentError",
    "PodiumError",
    "Project",
    "Publisher",
    "Record",
    "RequestHeaders",
    "RetryPolicy",
    "Settings",
    "SharedResource",
    "Stage",
    "StageContext",
    "StageEnv",
    "Table",
    "Telemetry",
    "TopicSpec",
    "TransientError",
    "WindowStage",
    "WindowState",
    "dlq_topic",
    "load_settings",
    "now_ms",
    "retry_topic",
]
