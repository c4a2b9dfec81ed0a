"""What every provider is: a chat request in, a completion (or a stream of pieces ending in one)
out; or texts to embed in, their vectors out (:class:`EmbeddingRequest`, :class:`Embeddings`).
The gateway, the local provider and the providers over httpx all speak these types, so none of
them depends on another's transport.

Messages are podium's own, neutral shape; each provider translates them to its wire format, so a
fallback from one provider to another carries the conversation and its tool calls across::

    {"role": "user", "content": "I was charged twice"}
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "lookup_invoices",
                                                          "arguments": "{\\"account\\": \\"A-1\\"}"}]}
    {"role": "tool", "tool_call_id": "c1", "name": "lookup_invoices", "content": "[...]",
     "is_error": False}

``arguments`` stays the JSON text the model wrote: whether it parses and fits the tool's
parameters is the tool's to decide (a model that wrote broken arguments hears why).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from agents.gateway.pricing import Usage
from agents.gateway.sse import estimate_tokens

__all__ = [
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "Embeddings",
    "Provider",
    "StreamPiece",
    "ToolCall",
    "ToolSpec",
]


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and its parameters as JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    """One call the model asks for. ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int = 512
    temperature: float | None = None
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    # None: the model decides ("auto"); "required": some tool; "none": no tool; or a tool's name.
    tool_choice: str | None = None
    # A JSON Schema the reply must match (structured output); see agents.gateway.structured.
    response_schema: dict[str, Any] | None = None

    operation: ClassVar[str] = "chat"  # gen_ai.operation.name

    def worst_case(self) -> Usage:
        """The most this call can use: its prompt (estimated) and ``max_tokens`` of output."""
        return Usage(self.prompt_tokens_estimate(), self.max_tokens)

    def prompt_tokens_estimate(self) -> int:
        text = (self.system or "") + "".join(str(m.get("content", "")) for m in self.messages)
        text += "".join(c.get("arguments", "") for m in self.messages for c in m.get("tool_calls") or ())
        text += "".join(t.name + t.description + str(t.parameters) for t in self.tools)
        # The schema is read by the model too (a response_format, or the forced tool's input_schema).
        text += json.dumps(self.response_schema) if self.response_schema is not None else ""
        return estimate_tokens(text)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    finish_reason: str | None
    usage: Usage
    provider: str
    latency_s: float
    first_chunk_s: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class StreamPiece:
    """A text delta, or (``final`` set) the end of the stream with its usage and tool calls."""

    text: str = ""
    final: Completion | None = None


@dataclass(frozen=True)
class EmbeddingRequest:
    """Texts to embed with one model, in one call (a batch)."""

    model: str
    inputs: tuple[str, ...]
    # Shorter vectors from a model that can make them (OpenAI's text-embedding-3-*); None: the
    # model's own length. The policy's ``dimensions``, so every route makes the same length.
    dimensions: int | None = None

    operation: ClassVar[str] = "embeddings"  # gen_ai.operation.name

    def worst_case(self) -> Usage:
        """The most this call can use: its inputs (estimated); an embedding writes no tokens."""
        return Usage(sum(estimate_tokens(text) for text in self.inputs), 0)


@dataclass(frozen=True)
class Embeddings:
    """One row per input, in the inputs' order. The gateway hands them out as unit rows (a dot
    product is the cosine); a row with nothing to embed stays zero."""

    vectors: npt.NDArray[np.float32]  # (len(inputs), dimensions)
    model: str
    dimensions: int
    usage: Usage  # input tokens; output 0
    provider: str
    latency_s: float


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion: ...

    def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]: ...

    async def embed(self, request: EmbeddingRequest, timeout_s: float) -> Embeddings: ...

    async def aclose(self) -> None: ...
