"""The one exception tree of podium.

Every error podium raises derives from :class:`PodiumError`. The stage runtime never inspects
classes to decide what to do with a failed message: it reads two flags.

``retryable``
    Trying the same message again may succeed (a timeout, a broker hiccup, a rate limit).
``dead_letter_reason``
    A short, stable machine name for the DLQ record's ``error_type``.

::

    PodiumError                      retryable=False
    ├── ConfigError                  bad settings, named key and source
    ├── CatalogError                 topics.yaml rejected: file, line, field
    ├── SchemaError                  an .avsc does not parse or breaks compatibility
    ├── BrokerError                  the local broker cannot be started / reached / did not acknowledge
    │   ├── ToolMissing              java or mvn not installed
    │   └── PublishRefused           Kafka answered and refused a record: no retry changes it
    ├── CodecError                   bytes that cannot become a record (or the reverse)
    │   ├── UnknownSchema            fingerprint / registry id not known
    │   ├── PayloadTooLarge          value above the stage's or the topic's limit
    │   └── UnencodableRecord        a record its schema cannot carry: names the field
    ├── HandlerError                 raised by a stage handler: the handler chooses the flag
    │   ├── TransientError           retryable=True
    │   └── PermanentError           retryable=False
    ├── RoutingError                 handler chose a topic the stage may not produce to
    ├── DeadlineExceeded             the request's latency budget is gone
    ├── HandlerTimeout               the handler ran past its timeout (retryable=True)
    ├── ApprovalError                a person's decision that cannot be taken (podium approve)
    │   ├── UnknownApproval          nothing was ever asked for that request id
    │   ├── UnknownCall              the request asked, but not for that call id
    │   └── ApprovalClosed           the call is no longer waiting
    │       ├── AlreadyDecided       decided first by someone (who and when in the message)
    │       └── ApprovalExpired      its time ran out: the agent denied it
    └── AccessError                  a caller of the HTTP gateway who may not do what it asks
        ├── Unauthenticated          no credential, or one that is not valid (401)
        ├── Forbidden                a valid caller outside its tenant or pipelines (403)
        └── Throttled                over its rate or concurrency limit (429, retryable=True)

Foreign errors (aiokafka, fastavro, httpx) are translated where they are caught, with
``raise ... from exc``. An exception a handler raises that is not a PodiumError is treated as
retryable: a bug surfaces in the DLQ after the configured attempts rather than being dropped.
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AlreadyDecided",
    "ApprovalClosed",
    "ApprovalError",
    "ApprovalExpired",
    "BrokerError",
    "CatalogError",
    "CodecError",
    "ConfigError",
    "DeadlineExceeded",
    "Forbidden",
    "HandlerError",
    "HandlerTimeout",
    "PayloadTooLarge",
    "PermanentError",
    "PodiumError",
    "PublishRefused",
    "RoutingError",
    "SchemaError",
    "Throttled",
    "ToolMissing",
    "TransientError",
    "Unauthenticated",
    "UnencodableRecord",
    "UnknownApproval",
    "UnknownCall",
    "UnknownSchema",
    "error_type",
    "is_retryable",
]


class PodiumError(Exception):
    retryable: bool = False
    dead_letter_reason: str = "error"


class ConfigError(PodiumError):
    dead_letter_reason = "config"


class CatalogError(PodiumError):
    dead_letter_reason = "catalog"


class SchemaError(PodiumError):
    dead_letter_reason = "schema"


class BrokerError(PodiumError):
    dead_letter_reason = "broker"


class ToolMissing(BrokerError):
    dead_letter_reason = "tool_missing"


class PublishRefused(BrokerError):
    """Kafka answered, and refused the record for a reason a retry does not change (this client
    may not write to the topic, a broker policy): the publisher's setup is wrong, not the record
    and not the broker's health."""

    dead_letter_reason = "publish_refused"


class CodecError(PodiumError):
    dead_letter_reason = "undecodable"


class UnknownSchema(CodecError):
    dead_letter_reason = "unknown_schema"


class PayloadTooLarge(CodecError):
    dead_letter_reason = "payload_too_large"


class UnencodableRecord(CodecError):
    """A record its schema cannot carry as it is (a lone surrogate in a string, an int beyond 32
    bits, a symbol not in the enum...). ``path`` names the field: ``("items", 3, "name")``;
    empty when the writer failed somewhere the check could not find."""

    dead_letter_reason = "unencodable"

    def __init__(self, schema: str, path: tuple[str | int, ...], reason: str) -> None:
        where = f"field '{_dotted(path)}'" if path else "the record"
        super().__init__(f"record does not match {schema}: {where}: {reason}")
        self.schema = schema
        self.path = path
        self.reason = reason


def _dotted(path: tuple[str | int, ...]) -> str:
    """``("items", 3, "name")`` as ``items[3].name``: how a person reads a field's place."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class HandlerError(PodiumError):
    dead_letter_reason = "handler"


class TransientError(HandlerError):
    retryable = True
    dead_letter_reason = "transient"


class PermanentError(HandlerError):
    dead_letter_reason = "permanent"


class RoutingError(PodiumError):
    dead_letter_reason = "routing"


class DeadlineExceeded(PodiumError):
    dead_letter_reason = "deadline_exceeded"


class HandlerTimeout(PodiumError):
    retryable = True
    dead_letter_reason = "timeout"


class ApprovalError(PodiumError):
    dead_letter_reason = "approval"


class UnknownApproval(ApprovalError):
    dead_letter_reason = "unknown_approval"


class UnknownCall(ApprovalError):
    dead_letter_reason = "unknown_call"


class ApprovalClosed(ApprovalError):
    dead_letter_reason = "approval_closed"


class AlreadyDecided(ApprovalClosed):
    dead_letter_reason = "already_decided"


class ApprovalExpired(ApprovalClosed):
    dead_letter_reason = "approval_expired"


class AccessError(PodiumError):
    dead_letter_reason = "access"


class Unauthenticated(AccessError):
    dead_letter_reason = "unauthenticated"


class Forbidden(AccessError):
    dead_letter_reason = "forbidden"


class Throttled(AccessError):
    """The same request later may pass: ``retry_after_s`` says when (``Retry-After``)."""

    retryable = True
    dead_letter_reason = "throttled"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def is_retryable(exc: BaseException) -> bool:
    """Podium errors say so themselves; anything else a handler raises gets retries."""
    if isinstance(exc, PodiumError):
        return exc.retryable
    return True


def error_type(exc: BaseException) -> str:
    if isinstance(exc, PodiumError):
        return exc.dead_letter_reason
    return f"unhandled:{type(exc).__name__}"
