"""The local provider: models that run in this process, behind the provider interface.

The offline default when no provider is set up. The provider knows no model itself: whoever
builds the gateway hands it the local models by name (a function from the prompt, every
message's content joined, to the answer), and each pipeline registers its own
(``local-extractive`` and ``local-reply`` of :mod:`agents.offline.grounded`, the content
pipeline's ``local-writer``, the market pipeline's ``local-lexicon`` and ``local-summary``), so
the provider imports no pipeline. Each reads the same prompt a hosted model would get, so
switching a stage between ``local`` and a real provider is a change of ``models.yaml``.

A model that raises (its own bug, or input it cannot take) is a
:class:`~agents.gateway.errors.LocalModelFailed`: not retried, since it would fail the same way,
but the chain moves on to its next route.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agents.gateway.errors import LocalModelFailed, RequestRejected
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ChatRequest, Completion, StreamPiece, ToolCall
from agents.gateway.sse import estimate_tokens
from streams.errors import PodiumError

__all__ = ["LocalModel", "LocalProvider", "LocalTurn", "ToolModel"]

# The prompt (every message's content, one per line) -> the answer.
LocalModel = Callable[[str], str]


@dataclass(frozen=True)
class LocalTurn:
    """What a local model that can call tools says: text, tool calls, or both."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolModel:
    """A local model that reads the whole request (its tools and the conversation so far) and
    answers with a :class:`LocalTurn`, e.g. a deterministic planner."""

    turn: Callable[[ChatRequest], LocalTurn]


class LocalProvider:
    """The local models as a provider: no network, no cost, deterministic."""

    def __init__(
        self, name: str = "local", models: Mapping[str, LocalModel | ToolModel] | None = None
    ) -> None:
        self.name = name
        self.models: Mapping[str, LocalModel | ToolModel] = MappingProxyType(dict(models or {}))

    def _answer(self, request: ChatRequest) -> LocalTurn:
        model = self.models.get(request.model)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise RequestRejected(f"the local provider has no model '{request.model}' (it has {known})")
        try:
            if isinstance(model, ToolModel):
                return model.turn(request)
            return LocalTurn(model("\n".join(str(m.get("content", "")) for m in request.messages)))
        except PodiumError:
            raise  # a model that raises one of ours (a ProviderError, a deadline) means it
        except Exception as exc:  # the model is foreign code: its bug must not leak past the provider
            raise LocalModelFailed(
                f"local model '{request.model}' raised {type(exc).__name__}: {exc}"
            ) from exc

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion:
        started = time.perf_counter()
        turn = self._answer(request)
        written = turn.text + "".join(c.name + c.arguments for c in turn.tool_calls)
        usage = Usage(request.prompt_tokens_estimate(), estimate_tokens(written))
        return Completion(
            turn.text,
            request.model,
            "tool_calls" if turn.tool_calls else "stop",
            usage,
            self.name,
            time.perf_counter() - started,
            tool_calls=turn.tool_calls,
        )

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]:
        completion = await self.complete(request, timeout_s)
        words = completion.text.split(" ")
        for i, word in enumerate(words):
            yield StreamPiece(text=word if i == 0 else " " + word)
        yield StreamPiece(final=completion)

    async def aclose(self) -> None:
        return None
