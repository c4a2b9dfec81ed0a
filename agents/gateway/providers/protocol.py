"""What every provider is: a chat request in, a completion (or a stream of pieces ending in one)
out. The gateway, the local provider and the providers over httpx all speak these types, so none
of them depends on another's transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from agents.gateway.pricing import Usage
from agents.gateway.sse import estimate_tokens

__all__ = ["ChatRequest", "Completion", "Provider", "StreamPiece"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int = 512
    temperature: float | None = None
    system: str | None = None

    def prompt_tokens_estimate(self) -> int:
        text = (self.system or "") + "".join(str(m.get("content", "")) for m in self.messages)
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


@dataclass(frozen=True)
class StreamPiece:
    """A text delta, or (``final`` set) the end of the stream with its usage."""

    text: str = ""
    final: Completion | None = None


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion: ...

    def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]: ...

    async def aclose(self) -> None: ...
