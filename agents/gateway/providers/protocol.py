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
    "MESSAGE_OVERHEAD_TOKENS",
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "Embeddings",
    "Provider",
    "StreamPiece",
    "ToolCall",
    "ToolSpec",
]


# What a chat format adds around each message, tool and the request itself (role markers,
# separators, a tool's rendering, the reply's priming), in tokens: a few in OpenAI's and
# Anthropic's formats; generously more here, since it is part of an upper bound.
MESSAGE_OVERHEAD_TOKENS = 16


def _bytes(text: str) -> int:
    """Every byte-level BPE tokenizer the providers use (OpenAI's cl100k/o200k, Anthropic's,
    Llama's and Mistral's, which fall back to bytes) makes a token of at least one byte of the
    text's UTF-8: a text has at most as many tokens as it has bytes, whatever its script."""
    return len(text.encode("utf-8", "surrogatepass"))


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
        """About the most this call can use: its prompt (estimated, about four characters a
        token: more for dense text such as CJK or code) and ``max_tokens`` of output. For the
        per-request cost cap and the rate limit; a budget reserves :meth:`upper_bound`."""
        return Usage(self.prompt_tokens_estimate(), self.max_tokens)

    def upper_bound(self) -> Usage:
        """The most this call can use, never less than it does: its prompt's UTF-8 bytes (a
        token is at least a byte) plus :data:`MESSAGE_OVERHEAD_TOKENS` for the request, each
        message and each tool, and ``max_tokens`` of output."""
        pieces = 1 + (self.system is not None) + len(self.messages) + len(self.tools)
        return Usage(_bytes(self.prompt_text()) + MESSAGE_OVERHEAD_TOKENS * pieces, self.max_tokens)

    def prompt_tokens_estimate(self) -> int:
        return estimate_tokens(self.prompt_text())

    def prompt_text(self) -> str:
        """What the model reads of the request, as one text (its format's markers aside)."""
        text = (self.system or "") + "".join(str(m.get("content", "")) for m in self.messages)
        text += "".join(c.get("arguments", "") for m in self.messages for c in m.get("tool_calls") or ())
        text += "".join(t.name + t.description + json.dumps(t.parameters) for t in self.tools)
        # The schema is read by the model too (a response_format, or the forced tool's input_schema).
        text += json.dumps(self.response_schema) if self.response_schema is not None else ""
        return text


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
        """About the most this call can use: its inputs (estimated); an embedding writes no
        tokens. A budget reserves :meth:`upper_bound`."""
        return Usage(sum(estimate_tokens(text) for text in self.inputs), 0)

    def upper_bound(self) -> Usage:
        """The most this call can use, never less: each input's UTF-8 bytes (a token is at least
        a byte) and :data:`MESSAGE_OVERHEAD_TOKENS` for its markers."""
        return Usage(sum(_bytes(text) + MESSAGE_OVERHEAD_TOKENS for text in self.inputs), 0)


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
