"""The local provider: models that run in this process, behind the provider interface.

The offline default when no provider is set up. The provider knows no model itself: whoever
builds the gateway hands it the local models by name (a function from the prompt, every
message's content joined, to the answer), and each pipeline registers its own
(``local-extractive`` and ``local-reply`` of :mod:`agents.offline.grounded`, the content
pipeline's ``local-writer``, the market pipeline's ``local-lexicon`` and ``local-summary``), so
the provider imports no pipeline. Each reads the same prompt a hosted model would get, so
switching a stage between ``local`` and a real provider is a change of ``models.yaml``.

Local embedding models are registered the same way, by name (a :class:`LocalEmbedder`: texts
in, one row each out; ``local-wordllama`` of :mod:`agents.offline.embedder`). A batch of more
than :data:`INLINE_EMBED_CHARS` characters is embedded in a worker thread
(``asyncio.to_thread``), so a large batch does not hold the event loop up for long.

A model that raises (its own bug, or input it cannot take) is a
:class:`~agents.gateway.errors.LocalModelFailed`: not retried, since it would fail the same way,
but the chain moves on to its next route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

from agents.gateway.errors import LocalModelFailed, RequestRejected
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Embeddings,
    StreamPiece,
    ToolCall,
)
from streams.errors import PodiumError

__all__ = [
    "INLINE_EMBED_CHARS",
    "LocalEmbedder",
    "LocalModel",
    "LocalModels",
    "LocalProvider",
    "LocalTurn",
    "ToolModel",
]

# The prompt (every message's content, one per line) -> the answer.
LocalModel = Callable[[str], str]

# A batch of at most this many characters is embedded on the event loop; a larger one in a
# thread. `make bench-embed` (2 shared cores): WordLlama took 560-1,370 ns a character batched
# and a hop to a thread 50-95 us, so this holds the loop for about 1-3 ms at most, and a batch
# large enough to be sent to a thread pays under a tenth of its time for the hop.
INLINE_EMBED_CHARS = 2048


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


@runtime_checkable
class LocalEmbedder(Protocol):
    """A local embedding model: texts in, one float32 row of ``dimensions`` per text out (any
    length: the gateway makes them unit rows). It may be called from a worker thread.

    A Protocol, not a class to wrap in: the offline models below the gateway provide it as they
    are (:data:`agents.offline.embedder.EMBEDDING_MODELS`)."""

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def _tokens(text: str) -> int:
    """What a local model bills: it has no tokenizer, so it counts as a BPE tokenizer about
    would, four ASCII characters a token and a token for every other character (CJK is about one
    a character in cl100k and o200k). Denser than the gateway's four-characters estimate for such
    text, as a hosted model's bill is, and never above the text's UTF-8 bytes (the bound a budget
    reserves); tests/agents/test_tenant_budget.py relies on both."""
    other = sum(1 for c in text if ord(c) > 127)
    return (len(text) - other + 3) // 4 + other


# What the local provider serves, by model name.
LocalModels: TypeAlias = Mapping[str, LocalModel | ToolModel | LocalEmbedder]


class LocalProvider:
    """The local models as a provider: no network, no cost, deterministic."""

    def __init__(self, name: str = "local", models: LocalModels | None = None) -> None:
        self.name = name
        self.models: LocalModels = MappingProxyType(dict(models or {}))
        # Told apart once: a runtime Protocol check costs tens of microseconds a call.
        self._embedders = {n: m for n, m in self.models.items() if isinstance(m, LocalEmbedder)}
        self._chat = {n: m for n, m in self.models.items() if not isinstance(m, LocalEmbedder)}

    def _model(self, name: str) -> LocalModel | ToolModel | LocalEmbedder:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise RequestRejected(f"the local provider has no model '{name}' (it has {known})")
        return model

    def _answer(self, request: ChatRequest) -> LocalTurn:
        model = self._chat.get(request.model)
        if model is None:
            self._model(request.model)  # no model of that name at all: says which there are
            raise RequestRejected(f"local model '{request.model}' embeds texts; it does not chat")
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
        usage = Usage(_tokens(request.prompt_text()), _tokens(written))
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

    async def embed(self, request: EmbeddingRequest, timeout_s: float) -> Embeddings:
        """The texts' rows from the named local embedder, in a thread when the batch is large."""
        started = time.perf_counter()
        model = self._embedders.get(request.model)
        if model is None:
            self._model(request.model)  # no model of that name at all: says which there are
            raise RequestRejected(f"local model '{request.model}' is a chat model; it does not embed")
        if request.dimensions not in (None, model.dimensions):
            raise RequestRejected(
                f"local model '{request.model}' makes {model.dimensions} dimensions, not {request.dimensions}"
            )
        texts = list(request.inputs)
        try:
            if sum(len(text) for text in texts) > INLINE_EMBED_CHARS:
                vectors = await asyncio.to_thread(model.embed, texts)
            else:
                vectors = model.embed(texts)
        except PodiumError:
            raise
        except Exception as exc:  # foreign code, as for a chat model
            raise LocalModelFailed(
                f"local model '{request.model}' raised {type(exc).__name__}: {exc}"
            ) from exc
        return Embeddings(
            vectors=vectors,
            model=request.model,
            dimensions=model.dimensions,
            usage=request.worst_case(),
            provider=self.name,
            latency_s=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        return None
