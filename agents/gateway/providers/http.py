"""Model providers over httpx: OpenAI-compatible chat completions and embeddings, and Anthropic
Messages (Anthropic has no embeddings API: its ``embed`` refuses, and the config refuses an
Anthropic route in an embeddings chain before that).

One ``httpx.AsyncClient`` per provider, over one aiohttp connector by default (a ``transport``
passed in replaces it: tests pass ``httpx.MockTransport`` or an ASGI app's), no retries of its
own (the gateway is the one retry layer), every call bounded by a timeout the caller passes
(never beyond the request's deadline): a whole answer within it, a stream's head within it and
then no gap between its chunks longer. Failures become :mod:`agents.gateway.errors` types
(:mod:`agents.gateway.providers.transport` says which never left this process); an API key is
sent in a header and nowhere else (its repr is masked). What goes on the wire and what comes
back (messages, tools, tool calls, structured output) is translated by
:mod:`agents.gateway.providers.wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
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
from agents.gateway.providers.transport import (
    TRANSPORT_ERRORS,
    call_timeout,
    default_transport,
    never_sent,
    timed_out,
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


@dataclass(repr=False)
class _HttpProvider:
    name: str
    base_url: str
    api_key: str = field(default="")
    transport: httpx.AsyncBaseTransport | None = None

    def __post_init__(self) -> None:
        base_url = self.base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=self.transport or default_transport(base_url),
            headers=self._auth_headers(),
        )
        # Each endpoint's URL parsed once: merging a relative path into the base URL is about
        # half of what building a request costs httpx, on every call.
        self._urls = {path: httpx.URL(base_url + path) for path in (self._path, "/embeddings")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, api_key=***)"

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._client.aclose()

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
        chunks = self._open_stream(self._path, self._body(request, True), timeout_s, headers or {})
        try:
            # Closed here when this stream is left mid-way (closed or cancelled), not whenever
            # the collector finalizes it: its connection is free for the next call at once.
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
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
            async with asyncio.timeout(timeout_s):  # the whole call, the write aiohttp leaves unbounded too
                response = await self._client.post(
                    self._urls[path], json=body, timeout=call_timeout(timeout_s), headers=extra
                )
        except TRANSPORT_ERRORS as exc:
            if never_sent(exc):  # the provider never saw it, so it billed nothing
                raise Unreachable(f"{self.name}: {_name(exc)}: {exc}", sent=False) from exc
            if timed_out(exc):
                raise Unreachable(f"{self.name}: no answer within {timeout_s:.2f}s") from exc
            raise Unreachable(f"{self.name}: {_name(exc)}: {exc}") from exc
        if response.status_code >= 400:
            raise _status_error(response)
        return response

    async def _open_stream(
        self, path: str, body: dict[str, Any], timeout_s: float, extra: dict[str, str]
    ) -> AsyncGenerator[bytes, None]:
        """The body's chunks as they come: its head within ``timeout_s``, then no gap longer
        (the read timeout). Left mid-way (closed or cancelled), the response is closed, and a
        connection whose body was not read to its end is closed rather than pooled."""
        request = self._client.build_request(
            "POST", self._urls[path], json=body, timeout=call_timeout(timeout_s), headers=extra
        )
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._client.send(request, stream=True)
        except TRANSPORT_ERRORS as exc:
            raise self._broken(exc, timeout_s) from exc
        try:
            if response.status_code >= 400:
                async with asyncio.timeout(timeout_s):
                    await response.aread()
                raise _status_error(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        except TRANSPORT_ERRORS as exc:
            raise self._broken(exc, timeout_s) from exc
        finally:
            await response.aclose()

    def _broken(self, exc: BaseException, timeout_s: float) -> StreamBroken:
        if never_sent(exc):
            return StreamBroken(f"{self.name}: stream not opened: {_name(exc)}", sent=False)
        if timed_out(exc):
            return StreamBroken(f"{self.name}: stream stalled past {timeout_s:.2f}s")
        return StreamBroken(f"{self.name}: stream cut: {_name(exc)}")


def _name(exc: BaseException) -> str:
    """The failure's own name: aiohttp's error under the httpx one it was mapped to, if any."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else None
    return type(cause if cause is not None else exc).__name__


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
