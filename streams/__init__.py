"""podium's stream runtime: the public surface. Everything else is an implementation module."""

from streams.catalog import Catalog, TopicSpec, dlq_topic, load_catalog, retry_topic
from streams.codec import Codec, ConfluentCodec, SingleObjectCodec
from streams.config import Settings, load_settings
from streams.errors import (
    CodecError,
    DeadlineExceeded,
    PermanentError,
    PodiumError,
    TransientError,
)
from streams.headers import RequestHeaders
from streams.project import Project
from streams.publish import Publisher
from streams.retry import RetryPolicy
from streams.runtime import StageWorker
from streams.schemas import SchemaStore
from streams.stage import Emit, Record, SharedResource, Stage, StageContext, StageEnv

__all__ = [
    "Catalog",
    "Codec",
    "CodecError",
    "ConfluentCodec",
    "DeadlineExceeded",
    "Emit",
    "PermanentError",
    "PodiumError",
    "Project",
    "Publisher",
    "Record",
    "RequestHeaders",
    "RetryPolicy",
    "SchemaStore",
    "Settings",
    "SharedResource",
    "SingleObjectCodec",
    "Stage",
    "StageContext",
    "StageEnv",
    "StageWorker",
    "TopicSpec",
    "TransientError",
    "dlq_topic",
    "load_catalog",
    "load_settings",
    "retry_topic",
]
