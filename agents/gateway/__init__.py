"""The model gateway: one route loop (:mod:`~agents.gateway.gateway`) over one attempt
(:mod:`~agents.gateway.attempt`), with the decisions they read free of I/O (what an error means,
how long to wait, whether a circuit lets a call through, how fast a worker may call, what a call
costs, how a stream adds up), the response cache, and the one gateway of a process
(:mod:`~agents.gateway.resource`). The providers it calls are in :mod:`agents.gateway.providers`.
This face holds the decisions; the gateway itself is imported from its module."""

from agents.gateway.backoff import Backoff
from agents.gateway.breaker import CircuitBreaker
from agents.gateway.errors import (
    ContentRefused,
    ContextTooLong,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    StreamBroken,
    Unreachable,
    classify_response,
)
from agents.gateway.pricing import Price, PriceTable, Usage
from agents.gateway.ratelimit import RateLimiter
from agents.gateway.sse import AnthropicStream, OpenAIStream, SseDecoder

__all__ = [
    "AnthropicStream",
    "Backoff",
    "CircuitBreaker",
    "ContentRefused",
    "ContextTooLong",
    "OpenAIStream",
    "Overloaded",
    "Price",
    "PriceTable",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "RateLimiter",
    "RequestRejected",
    "ServerError",
    "SseDecoder",
    "StreamBroken",
    "Unreachable",
    "Usage",
    "classify_response",
]
