"""Model providers over httpx: OpenAI-compatible chat completions and embeddings, and Anthropic
Messages (Anthropic has no embeddings API: its ``embed`` refuses, and the config refuses an
Anthropic route in an embeddings chain before that).

One pooled ``httpx.AsyncClient`` per provider, no retries of its own (the gateway is the one
retry layer), every call bounded by a timeout the caller passes (never beyond the request's
deadline). Failures become :mod:`agents.gateway.errors` types; an API key is sent in a header
and nowhere else (its repr is masked). What goes on the wire and what comes back (messages,
tools, tool calls, structured output) is translated by :mod:`agents.gateway.providers.wire`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from agents.gateway.errors import (
    ProviderError,
    RequestRejected,
    ServerError,
    StreamBroken,
    Unreachable,
    classify_response,
    may_have_billed,
)
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Embeddings,
    StreamPiece,
)
from agents.gateway.providers.wire import (
    REPLY_TOOL,
    anthropic_body,
    anthropic_reply,
    openai_body,
    openai_embedding_body,
    openai_embeddings,
    openai_reply,
)
from agents.gateway.sse import AnthropicStream, OpenAIStream, SseDecoder

__all__ = ["AnthropicProvider", "OpenAIProvider"]


# Failures before a connection carried the request: the provider never saw it, so it billed
# nothing (a budget releases the call's hold). Any later transport failure may have run the model.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(repr=False)
class _HttpProvider:
    name: str
    base_url: str
    api_key: str = field(default="")
    transport: httpx.AsyncBaseTransport | None = None

    # httpcore's pool walks all of its connections on every request, and quadratically when
    # many are idle: with hundreds of calls in flight one big pool spent most of a worker's CPU
    # (bench/support_pipeline.py under cProfile). Several small pools keep each walk short.
    POOLS = 16
    CONNECTIONS_PER_POOL = 64

    def __post_init__(self) -> None:
        self._clients = [
            httpx.AsyncClient(
                base_url=self.base_url.rstrip("/"),
                transport=self.transport,
                limits=httpx.Limits(
                    max_connections=self.CONNECTIONS_PER_POOL,
                    max_keepalive_connections=self.CONNECTIONS_PER_POOL,
                ),
                headers=self._auth_headers(),
            )
            for _ in range(self.POOLS if self.transport is None else 1)
        ]
        self._next = 0

    @property
    def _client(self) -> httpx.AsyncClient:
        """The next pool, round robin."""
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, api_key=***)"

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    # Subclasses name their endpoint, request body and stream accumulator.
    _path = ""
    _end_marker = ""

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _accumulator(self, request: ChatRequest) -> OpenAIStream | AnthropicStream:
        raise NotImplementedError

    async def stream(
        self, request: ChatRequest, timeout_s: float, headers: dict[str, str] | None = None
    ) -> AsyncIterator[StreamPiece]:
        """Text deltas, then one piece with the final completion (and its tool calls, whose
        arguments arrive as deltas too, not as text). A stream that errors or ends early raises a
        ProviderError carrying what it used (``partial_usage``, estimated, arguments counted)."""
        started, first = time.perf_counter(), None
        decoder, state = SseDecoder(), self._accumulator(request)
        try:
            async for chunk in self._open_stream(
                self._path, self._body(request, True), timeout_s, headers or {}
            ):
                for event in decoder.feed(chunk):
                    text = state.add(event)
                    if text:
                        first = first if first is not None else time.perf_counter() - started
                        yield StreamPiece(text=text)
        except ProviderError as exc:
            if may_have_billed(exc):  # not a stream refused before it ran: that bills nothing
                exc.partial_usage = state.final_usage()
            raise
        if not state.done:
            broken = StreamBroken(f"{self.name}: stream ended without {self._end_marker}")
            broken.partial_usage = state.final_usage()
            raise broken
        elapsed = time.perf_counter() - started
        final = Completion(
            state.text,
            request.model,
            state.finish_reason,
            state.final_usage(),
            self.name,
            elapsed,
            first,
            tool_calls=state.tool_calls,
        )
        yield StreamPiece(final=final)

    async def _post(
        self, path: str, body: dict[str, Any], timeout_s: float, extra: dict[str, str]
    ) -> httpx.Response:
        try:
            response = await self._client.post(path, json=body, timeout=timeout_s, headers=extra)
        except _NOT_SENT as exc:
            raise Unreachable(f"{self.name}: {type(exc).__name__}: {exc}", sent=False) from exc
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.name}: no answer within {timeout_s:.2f}s") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _status_error(response)
        return response

    async def _open_stream(
        self, path: str, body: dict[str, Any], timeout_s: float, extra: dict[str, str]
    ) -> AsyncIterator[bytes]:
        try:
            async with self._client.stream(
                "POST", path, json=body, timeout=timeout_s, headers=extra
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _status_error(response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except _NOT_SENT as exc:
            raise StreamBroken(f"{self.name}: stream not opened: {type(exc).__name__}", sent=False) from exc
        except httpx.TimeoutException as exc:
            raise StreamBroken(f"{self.name}: stream stalled past {timeout_s:.2f}s") from exc
        except httpx.TransportError as exc:
            raise StreamBroken(f"{self.name}: stream cut: {type(exc).__name__}") from exc


def _status_error(response: httpx.Response) -> ProviderError:
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text[:300]
    return classify_response(response.status_code, body, response.headers)


class OpenAIProvider(_HttpProvider):
    """Any OpenAI-compatible ``/chat/completions`` (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter)."""

    _path = "/chat/completions"
    _end_marker = "[DONE]"

    def _accumulator(self, request: ChatRequest) -> OpenAIStream:
        return OpenAIStream(prompt_tokens_estimate=request.prompt_tokens_estimate())

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return openai_body(request, stream)

    async def complete(
        self, request: ChatRequest, timeout_s: float, headers: dict[str, str] | None = None
    ) -> Completion:
        started = time.perf_counter()
        data = (await self._post(self._path, self._body(request, False), timeout_s, headers or {})).json()
        reply = openai_reply((data.get("choices") or [{}])[0])
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
        return Completion(
            text=reply.text,
            model=data.get("model", request.model),
            finish_reason=reply.finish_reason,
            usage=Usage(usage.get("prompt_tokens", 0) - cached, usage.get("completion_tokens", 0), cached),
            provider=self.name,
            latency_s=time.perf_counter() - started,
            tool_calls=reply.tool_calls,
        )

    async def embed(
        self, request: EmbeddingRequest, timeout_s: float, headers: dict[str, str] | None = None
    ) -> Embeddings:
        """``POST /embeddings``: errors become the same error types as a chat call's."""
        started = time.perf_counter()
        response = await self._post("/embeddings", openai_embedding_body(request), timeout_s, headers or {})
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ServerError(f"{self.name}: an embeddings answer that is not JSON") from exc
        vectors, usage = openai_embeddings(data, len(request.inputs))
        return Embeddings(
            vectors=vectors,
            model=str(data.get("model") or request.model),
            dimensions=int(vectors.shape[1]) if len(vectors) else 0,
            usage=usage,
            provider=self.name,
            latency_s=time.perf_counter() - started,
        )


class AnthropicProvider(_HttpProvider):
    """Anthropic Messages (``/v1/messages``)."""

    _path = "/v1/messages"
    _end_marker = "message_stop"

    def _accumulator(self, request: ChatRequest) -> AnthropicStream:
        return AnthropicStream(
            prompt_tokens_estimate=request.prompt_tokens_estimate(),
            reply_tool=REPLY_TOOL if request.response_schema is not None else None,
        )

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": "2023-06-01"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return anthropic_body(request, stream)

    async def embed(self, request: EmbeddingRequest, timeout_s: float) -> Embeddings:
        raise RequestRejected(
            f"{self.name}: Anthropic has no embeddings API; embed '{request.model}' through an "
            "OpenAI-compatible provider or a local model"
        )

    async def complete(
        self, request: ChatRequest, timeout_s: float, headers: dict[str, str] | None = None
    ) -> Completion:
        started = time.perf_counter()
        data = (await self._post(self._path, self._body(request, False), timeout_s, headers or {})).json()
        usage = data.get("usage") or {}
        reply = anthropic_reply(data, structured=request.response_schema is not None)
        return Completion(
            text=reply.text,
            model=data.get("model", request.model),
            finish_reason=reply.finish_reason,
            usage=Usage(
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("cache_read_input_tokens", 0) or 0,
            ),
            provider=self.name,
            latency_s=time.perf_counter() - started,
            tool_calls=reply.tool_calls,
        )
