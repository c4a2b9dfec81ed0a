"""The contracts every record keeps: the topic catalog, the Avro schemas and their history, the codec
(single-object or Confluent framing) and the headers carried through every hop."""

from streams.contracts.catalog import (
    DEAD_LETTER_SCHEMA,
    RETRY_SUFFIX,
    Catalog,
    TopicSpec,
    dlq_topic,
    load_catalog,
    parse_catalog,
    retry_topic,
)
from streams.contracts.codec import Codec, ConfluentCodec, SingleObjectCodec
from streams.contracts.headers import (
    ATTEMPT,
    DEADLINE,
    MAX_HEADER_VALUE_BYTES,
    NOT_BEFORE,
    REQUEST_ID,
    ROUND,
    TRACEPARENT,
    TRACESTATE,
    RequestHeaders,
    header_value,
    ingress_headers,
    new_request_id,
    now_ms,
    parse_headers,
)
from streams.contracts.registry import SchemaRegistryClient
from streams.contracts.schemas import SchemaStore, SchemaVersion

__all__ = [
    "ATTEMPT",
    "DEADLINE",
    "DEAD_LETTER_SCHEMA",
    "MAX_HEADER_VALUE_BYTES",
    "NOT_BEFORE",
    "REQUEST_ID",
    "RETRY_SUFFIX",
    "ROUND",
    "TRACEPARENT",
    "TRACESTATE",
    "Catalog",
    "Codec",
    "ConfluentCodec",
    "RequestHeaders",
    "SchemaRegistryClient",
    "SchemaStore",
    "SchemaVersion",
    "SingleObjectCodec",
    "TopicSpec",
    "dlq_topic",
    "header_value",
    "ingress_headers",
    "load_catalog",
    "new_request_id",
    "now_ms",
    "parse_catalog",
    "parse_headers",
    "retry_topic",
]
