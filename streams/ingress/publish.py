"""Ingress: publish new requests with a request id, a trace and a deadline.

What can go wrong, and what each error says (the HTTP gateway answers with it):

- the record does not fit its schema: :class:`UnencodableRecord`, naming the field;
- it is larger than its topic accepts: :class:`PayloadTooLarge`, before anything is sent;
- Kafka refuses it for good (this client may not write there, a policy): :class:`PublishRefused`;
- Kafka does not acknowledge it (unreachable, no leader, timed out): :class:`BrokerError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from opentelemetry.trace import SpanKind

from streams.contracts.catalog import Catalog
from streams.contracts.codec import Codec
from streams.contracts.headers import ingress_headers
from streams.errors import BrokerError, PayloadTooLarge, PodiumError, PublishRefused
from streams.kafka.connection import Cluster
from streams.runtime.workers import MAX_REQUEST_BYTES
from streams.telemetry.otel import Telemetry, current_trace_headers

__all__ = ["Publisher", "record_limit"]

log = logging.getLogger(__name__)

# Kafka counts the record batch's framing against max.message.bytes too: the same margin the
# stage runtime keeps for its outputs (streams/runtime/outcome.py).
_RECORD_OVERHEAD = 512

# Kafka's answers that no retry changes: this client may not write there, or the broker will
# never take the record. Every other KafkaError means it was not acknowledged (yet).
_REFUSALS = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    PolicyViolationError,
    InvalidTopicError,
    CorruptRecordException,
    InvalidTimestampError,
)


def record_limit(max_message_bytes: int) -> int:
    """The largest record (key, value and headers) a topic with this max.message.bytes takes
    from this publisher: the topic's limit or the producer's, less Kafka's framing."""
    return min(max_message_bytes, MAX_REQUEST_BYTES) - _RECORD_OVERHEAD


def refusal(topic: str, exc: KafkaError) -> PodiumError:
    """The podium error for a record Kafka did not take (a pure decision, tested alone)."""
    if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
        # The broker's own limit for the topic is lower than the catalog's (topics not applied?).
        return PayloadTooLarge(
            f"{topic} refused the record as too large ({type(exc).__name__}): the broker's "
            "max.message.bytes for it is lower than the catalog says (run `podium topics apply`)"
        )
    if isinstance(exc, _REFUSALS):
        hint = (
            ": grant this client's principal WRITE on the topic (`podium acls apply`)"
            if "Authorization" in type(exc).__name__
            else ""
        )
        return PublishRefused(f"Kafka refused the record for {topic}: {type(exc).__name__}: {exc}{hint}")
    return BrokerError(f"could not publish to {topic}: {exc}")


class Publisher:
    """``async with Publisher(...) as pub: request_id = await pub.publish(topic, record)``"""

    CLOSE_TIMEOUT_S = 5.0

    def __init__(
        self, *, cluster: Cluster, catalog: Catalog, codec: Codec, telemetry: Telemetry | None = None
    ) -> None:
        self._catalog = catalog
        self._codec = codec
        self._telemetry = telemetry or Telemetry.configure("none")
        self._tracer = self._telemetry.tracer("podium.publish")
        self._producer = cluster.producer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES,
            client_id="podium-publish",
        )
        self._cluster = cluster
        self._request_id_field: dict[str, bool] = {}

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise BrokerError(f"cannot reach Kafka at {self._cluster}: {exc}") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), self.CLOSE_TIMEOUT_S)
        except TimeoutError:
            # Kafka is unreachable and aiokafka's stop() waits for unsent records forever.
            # Their senders already gave up (a 503, a timeout): close the connections and go.
            log.warning("publisher closed with records unsent: Kafka at %s is unreachable", self._cluster)
            await self._producer.client.close()

    async def publish(
        self,
        topic: str,
        record: dict[str, Any],
        *,
        request_id: str | None = None,
        budget_s: float | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
        key: str | None = None,
        tenant: str | None = None,
        strict: bool = False,
    ) -> str:
        """Encode, send and wait for the broker's acknowledgement; returns the request id.

        The request id is ``request_id``, else the record's own ``request_id`` field, else new;
        a record whose schema has an empty ``request_id`` field gets it filled in. Without
        ``budget_s`` the topic's ``budget`` from the catalog applies (if it declares one). The
        key is the request id unless ``key`` names another (a compacted topic's entity id).
        ``podium-tenant`` is ``tenant``, else the record's own ``tenant`` field (if it has one).
        ``strict``: the record comes from outside podium (the HTTP gateway), so refuse what the
        codec would otherwise change without a word (an int beyond 32 bits, an unknown field).

        Raises :class:`UnencodableRecord` or :class:`PayloadTooLarge` before anything is sent,
        :class:`PublishRefused` or :class:`BrokerError` when Kafka did not take it.
        """
        spec = self._catalog.get(topic)
        if budget_s is None and spec.budget_ms is not None:
            budget_s = spec.budget_ms / 1000
        tenant = tenant or record.get("tenant") or None
        headers = ingress_headers(
            request_id or record.get("request_id") or None,
            budget_s,
            tenant if isinstance(tenant, str) else None,
        )
        if self._has_request_id(spec.value_schema) and not record.get("request_id"):
            record = {**record, "request_id": headers.request_id}
        value = self._codec.encode(spec.value_schema, record, strict=strict)
        with self._tracer.start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "podium.request_id": headers.request_id or "",
            },
        ):
            traceparent, tracestate = current_trace_headers()
            headers = replace(
                headers,
                traceparent=traceparent,
                tracestate=tracestate,
                passthrough=tuple(extra_headers),
            )
            assert headers.request_id is not None
            record_key = (headers.request_id if key is None else key).encode()
            kafka_headers = headers.to_kafka()
            _check_size(topic, spec.max_message_bytes, record_key, value, kafka_headers)
            await self.send_raw(topic, record_key, value, kafka_headers)
        return headers.request_id

    async def enqueue(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Hand a record to the producer and return its acknowledgement, not yet awaited: a
        stream of chunks goes out at the producer's pace and is awaited once, in order."""
        try:
            future: asyncio.Future[Any] = await self._producer.send(topic, value, key=key, headers=headers)
        except KafkaError as exc:
            raise refusal(topic, exc) from exc
        return future

    def _has_request_id(self, schema: str) -> bool:
        """Looked up once per schema, not per record."""
        if schema not in self._request_id_field:
            self._request_id_field[schema] = "request_id" in self._codec.field_names(schema)
        return self._request_id_field[schema]

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send bytes as they are (tests, replays, redrives) and wait for the acknowledgement."""
        try:
            future = await self._producer.send(topic, value, key=key, headers=headers)
            await future
        except KafkaError as exc:
            raise refusal(topic, exc) from exc


def _check_size(
    topic: str, max_message_bytes: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    """A record the topic (or the producer) cannot take is refused here, before it is sent:
    sent, the broker would refuse it anyway, after a round trip that looks like an outage."""
    limit = record_limit(max_message_bytes)
    size = len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)
    if size > limit:
        raise PayloadTooLarge(
            f"the record is {size:,} bytes; {topic} accepts at most {limit:,} (its max_message_bytes "
            f"in the catalog, less {_RECORD_OVERHEAD} bytes of Kafka's framing): send less"
        )
