"""The local provider: models that run in this process, behind the provider interface.

The offline default when no provider is set up. The provider knows no model itself: whoever
builds the gateway hands it the local models by name (a function from the prompt, every
message's content joined, to the answer), and each pipeline registers its own
(``local-extractive`` and ``local-reply`` of :mod:`agents.offline.grounded`, the content
pipeline's ``local-writer``, the market pipeline's ``local-lexicon`` and ``local-summary``), so
the provider imports no pipeline. Each reads the same prompt a hosted model would get, so
switching a stage between ``local`` and a real provider is a change of ``models.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType

from agents.gateway.errors import RequestRejected
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ChatRequest, Completion, StreamPiece
from agents.gateway.sse import estimate_tokens

__all__ = ["LocalModel", "LocalProvider"]

# The prompt (every message's content, one per line) -> the answer.
LocalModel = Callable[[str], str]


class LocalProvider:
    """The local models as a provider: no network, no cost, deterministic."""

    def __init__(self, name: str = "local", models: Mapping[str, LocalModel] | None = None) -> None:
        self.name = name
        self.models: Mapping[str, LocalModel] = MappingProxyType(dict(models or {}))

    def _answer(self, request: ChatRequest) -> str:
        model = self.models.get(request.model)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise RequestRejected(f"the local provider has no model '{request.model}' (it has {known})")
        return model("\n".join(str(m.get("content", "")) for m in request.messages))

    async def complete(self, request: ChatRequest, timeout_s: float) -> Completion:
        started = time.perf_counter()
        text = self._answer(request)
        usage = Usage(request.prompt_tokens_estimate(), estimate_tokens(text))
        return Completion(text, request.model, "stop", usage, self.name, time.perf_counter() - started)

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[StreamPiece]:
        completion = await self.complete(request, timeout_s)
        words = completion.text.split(" ")
        for i, word in enumerate(words):
            yield StreamPiece(text=word if i == 0 else " " + word)
        yield StreamPiece(final=completion)

    async def aclose(self) -> None:
        return None
