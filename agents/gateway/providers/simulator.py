"""``podium sim``: a local stand-in for model providers. It is NOT a model.

It speaks the OpenAI chat-completions protocol (JSON and SSE, with the ``include_usage`` chunk),
OpenAI embeddings (``POST /v1/embeddings``: hashed-word vectors, see :mod:`.sim_embeddings`) and
the Anthropic Messages protocol (JSON and SSE events), answers with deterministic filler
text labelled ``[sim]``, and injects the faults real providers produce: 429 with Retry-After,
quota 429, 500, 529, timeouts, connection resets, streams cut mid-way and error events after a
200 (an embeddings call draws from the same faults; the stream's have no effect on it, as on a
chat call that is not streamed). Faults are drawn from a seeded generator, or forced per
request with the ``x-sim-fault`` header (tests use that, so they do not depend on arrival order).

Requests with tools get tool calls in either protocol, streamed or not (OpenAI ``tool_calls``
with their arguments in fragments, Anthropic ``tool_use`` blocks with ``input_json_delta``), and a
response schema gets an object that matches it; :mod:`.sim_tools` holds the rules. Cut streams
and error events strike midway through the arguments of a reply that calls tools. One fault is
only ever forced, never drawn: ``bad_output``, a structured reply or tool arguments that do not
match their schema.

The faults themselves (their early answers, the stream that breaks off without raising, the
log filter for its drops) are :mod:`.sim_faults`; the only trace of an injected fault in the log
is one INFO line from this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.gateway.providers.sim_embeddings import DEFAULT_DIMENSIONS, SimEmbedder, embeddings_answer
from agents.gateway.providers.sim_faults import (
    BREAKS,
    FAULTS,
    FORCED_ONLY,
    INJECTED,
    QUIET_DROPS,
    Drop,
    DroppableStream,
    error_response,
    fault_response,
)
from agents.gateway.providers.sim_tools import Plan, plan, read_anthropic, read_openai

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DEMO_PORT", "FAULTS", "SimConfig", "SimRequest", "SimulatorServer", "demo_simulator", "make_app"]

_WORDS = (
    "the",
    "request",
    "answer",
    "pipeline",
    "kafka",
    "stage",
    "model",
    "retry",
    "budget",
    "trace",
    "record",
    "topic",
    "stream",
    "token",
    "latency",
    "cost",
    "screen",
    "draft",
    "context",
    "reply",
)
_FRAGMENT = 4  # characters of JSON per streamed piece: about a token
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    latency_ms: float = 20.0
    jitter_ms: float = 10.0
    tokens_per_s: float = 2000.0
    retry_after_s: float = 1.0
    timeout_s: float = 60.0  # how long a "timeout" fault keeps the caller waiting
    context_window: int = 8192
    # The calls kept for tests to read (the newest): ``podium up --provider sim`` runs for hours,
    # and a list of every call's messages would grow until the process ran out of memory.
    requests_kept: int = 20_000


@dataclass(frozen=True)
class SimRequest:
    """One call as the simulator received it: when, the fault it drew (None: answered), and the
    conversation it was asked to continue."""

    at_ms: int
    fault: str | None
    messages: list[Any]


class _Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.calls = 0
        self.queued: deque[str | None] = deque()  # faults for the next calls, in order (tests)
        # the latest calls as they arrived (tests count what was paid), bounded by the config
        self.requests: deque[SimRequest] = deque(maxlen=config.requests_kept)

    def arrived(self, body: dict[str, Any], fault: str | None) -> None:
        messages = body.get("messages") or []
        self.requests.append(
            SimRequest(int(time.time() * 1000), fault, messages if isinstance(messages, list) else [])
        )

    def fault(self, request: Request) -> str | None:
        self.calls += 1
        fault = self._choose(request)
        if fault is not None:
            INJECTED.set(fault)
            _log.info("provider simulator: injected %s (%s %s)", fault, request.method, request.url.path)
        return fault

    def _choose(self, request: Request) -> str | None:
        if self.queued:
            return self.queued.popleft()
        forced = request.headers.get("x-sim-fault")
        if forced:
            return forced if forced in FAULTS or forced in FORCED_ONLY else None
        if self.config.faults and self.rng.random() < self.config.fault_rate:
            return self.rng.choice(self.config.faults)
        return None

    async def first_byte(self) -> None:
        delay = max(0.0, self.rng.gauss(self.config.latency_ms, self.config.jitter_ms)) / 1000
        await asyncio.sleep(delay)


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _answer(prompt: str, max_tokens: int) -> list[str]:
    digest = hashlib.sha256(prompt.encode()).digest()
    count = min(max_tokens, 12 + digest[0] % 30)
    return ["[sim]"] + [_WORDS[digest[i % 32] % len(_WORDS)] for i in range(1, count)]


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "tool_use":
        return json.dumps(block.get("input") or {})
    if block.get("type") == "tool_result":
        content = block.get("content")
        return _block_text({"content": content}) if not isinstance(content, list) else _prompt([block])
    return str(block.get("text", block.get("content", "")) or "")


def _prompt(messages: list[dict[str, Any]]) -> str:
    parts = []
    for m in messages:
        content = m.get("content", "")
        if isinstance(content, list):
            content = " ".join(_block_text(c) for c in content if isinstance(c, dict))
        parts.append(str(content or ""))
        parts += [str((c.get("function") or {}).get("arguments", "")) for c in m.get("tool_calls") or ()]
    return "\n".join(parts)


def _prompt_tokens(prompt: str, body: dict[str, Any]) -> int:
    """The tools and a response schema are read by the model too: they count (only when sent)."""
    extra = [body[k] for k in ("tools", "response_format") if body.get(k)]
    return _tokens(prompt + (json.dumps(extra) if extra else ""))


@dataclass(frozen=True)
class _Call:
    id: str
    name: str
    arguments: str  # JSON text

    def fragments(self) -> list[str]:
        return [self.arguments[i : i + _FRAGMENT] for i in range(0, len(self.arguments), _FRAGMENT)]


@dataclass(frozen=True)
class _Reply:
    """What the simulator answers: text as it streams, or tool calls."""

    pieces: tuple[str, ...]
    calls: tuple[_Call, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces) + sum(_tokens(c.arguments) for c in self.calls)

    @property
    def cut_at(self) -> int:
        """The step where cut_stream and error_event strike: midway through the arguments of a
        reply that calls tools, else midway through the text."""
        if self.calls:
            return len(self.pieces) + sum(len(c.fragments()) for c in self.calls) // 2
        return len(self.pieces) // 2


def _reply(planned: Plan, prompt: str, max_tokens: int, id_prefix: str) -> _Reply:
    if planned.calls:
        return _Reply((), tuple(_Call(f"{id_prefix}{c.number}", c.name, c.arguments) for c in planned.calls))
    if planned.json and planned.text is not None:
        return _Reply(tuple(_Call("", "", planned.text).fragments()))
    words = _answer(prompt, max_tokens) if planned.text is None else planned.text.split(" ")
    return _Reply(tuple(w if i == 0 else " " + w for i, w in enumerate(words)))


async def _paced(
    reply: _Reply, fault: str | None, tokens_per_s: float
) -> AsyncGenerator[tuple[str, int, str], None]:
    """The reply in stream order, one piece per token time: ("text", 0, piece), then per call
    ("start", index, "") and ("args", index, fragment); ("break", 0, "") where a fault strikes."""
    step = 0
    for piece in reply.pieces:
        if fault in BREAKS and step == reply.cut_at:
            yield "break", 0, ""
            return
        await asyncio.sleep(1 / tokens_per_s)
        yield "text", 0, piece
        step += 1
    for index, call in enumerate(reply.calls):
        yield "start", index, ""
        for fragment in call.fragments():
            if fault in BREAKS and step == reply.cut_at:
                yield "break", 0, ""
                return
            await asyncio.sleep(1 / tokens_per_s)
            yield "args", index, fragment
            step += 1


def make_app(config: SimConfig) -> Starlette:
    # On the logger itself: uvicorn's logging config (applied when a server is configured) keeps
    # existing filters, and addFilter adds this one once however many apps are made.
    logging.getLogger("uvicorn.error").addFilter(QUIET_DROPS)
    sim = _Sim(config)

    async def openai_chat(request: Request) -> Response:
        body = await request.json()
        fault = sim.fault(request)
        sim.arrived(body, fault)
        await sim.first_byte()
        if (
            early := await fault_response(fault, "openai", config.retry_after_s, config.timeout_s)
        ) is not None:
            return early
        prompt = _prompt(body.get("messages", []))
        prompt_tokens = _prompt_tokens(prompt, body)
        if prompt_tokens > config.context_window:
            return error_response(
                "openai",
                400,
                "invalid_request_error",
                f"This model's maximum context length is {config.context_window} tokens",
                "context_length_exceeded",
            )
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        reply = _reply(plan(read_openai(body), fault == "bad_output"), prompt, max_tokens, "call_sim_")
        model, created, rid = body.get("model", "sim"), int(time.time()), f"chatcmpl-sim-{sim.calls}"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": reply.tokens,
            "total_tokens": prompt_tokens + reply.tokens,
        }
        finish = "tool_calls" if reply.calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.calls:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in reply.calls
                    ],
                }
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        def call_delta(index: int, **fields: Any) -> dict[str, Any]:
            return {"tool_calls": [{"index": index, **fields}]}

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            async with contextlib.aclosing(_paced(reply, fault, config.tokens_per_s)) as pieces:
                async for kind, index, piece in pieces:
                    if kind == "break":
                        if fault == "error_event":
                            error = {
                                "error": {"message": "simulated error mid-stream", "type": "server_error"}
                            }
                            yield f"data: {json.dumps(error)}\n\n".encode()
                            return
                        raise Drop
                    if kind == "text":
                        yield chunk({"content": piece})
                    elif kind == "start":
                        call = reply.calls[index]
                        function = {"name": call.name, "arguments": ""}
                        yield chunk(call_delta(index, id=call.id, type="function", function=function))
                    else:
                        yield chunk(call_delta(index, function={"arguments": piece}))
            yield chunk({}, finish)
            if include_usage:
                payload = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(payload)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return DroppableStream(events(), media_type="text/event-stream")

    async def anthropic_messages(request: Request) -> Response:
        body = await request.json()
        fault = sim.fault(request)
        sim.arrived(body, fault)
        await sim.first_byte()
        if (
            early := await fault_response(fault, "anthropic", config.retry_after_s, config.timeout_s)
        ) is not None:
            return early
        prompt = _prompt(body.get("messages", [])) + _prompt([{"content": body.get("system", "")}])
        prompt_tokens = _prompt_tokens(prompt, body)
        if prompt_tokens > config.context_window:
            return error_response(
                "anthropic",
                400,
                "invalid_request_error",
                f"prompt is too long: {prompt_tokens} tokens > {config.context_window} maximum",
            )
        max_tokens = int(body.get("max_tokens") or 256)
        reply = _reply(plan(read_anthropic(body), fault == "bad_output"), prompt, max_tokens, "toolu_sim_")
        model, mid = body.get("model", "sim"), f"msg_sim_{sim.calls}"
        stop = "tool_use" if reply.calls else "end_turn"
        text_block = bool(reply.pieces) or not reply.calls  # a reply of calls only has no text block
        if not body.get("stream"):
            content = [{"type": "text", "text": reply.text}] if text_block else []
            content += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
                for c in reply.calls
            ]
            return JSONResponse(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": prompt_tokens,
                        "output_tokens": reply.tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                }
            )

        def event(name: str, payload: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event(
                "message_start",
                {
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {
                            "input_tokens": prompt_tokens,
                            "output_tokens": 1,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        },
                    }
                },
            )
            first = 1 if text_block else 0  # the block index of the first call
            block: int | None = None
            if text_block:
                block = 0
                yield event(
                    "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
                )
                yield event("ping", {})
            async with contextlib.aclosing(_paced(reply, fault, config.tokens_per_s)) as pieces:
                async for kind, index, piece in pieces:
                    if kind == "break":
                        if fault == "error_event":
                            yield event(
                                "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                            )
                            return
                        raise Drop
                    if kind == "text":
                        delta = {"type": "text_delta", "text": piece}
                        yield event("content_block_delta", {"index": 0, "delta": delta})
                    elif kind == "start":
                        if block is not None:
                            yield event("content_block_stop", {"index": block})
                        block, call = first + index, reply.calls[index]
                        tool_use = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                        yield event("content_block_start", {"index": block, "content_block": tool_use})
                        if index == 0 and not text_block:
                            yield event("ping", {})
                    else:
                        delta = {"type": "input_json_delta", "partial_json": piece}
                        yield event("content_block_delta", {"index": first + index, "delta": delta})
            yield event("content_block_stop", {"index": block})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": reply.tokens},
                },
            )
            yield event("message_stop", {})

        return DroppableStream(events(), media_type="text/event-stream")

    embedder = SimEmbedder()

    async def openai_embeddings(request: Request) -> Response:
        body = await request.json()
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        fault = sim.fault(request)
        sim.arrived({"messages": inputs}, fault)
        await sim.first_byte()
        if (
            early := await fault_response(fault, "openai", config.retry_after_s, config.timeout_s)
        ) is not None:
            return early
        if not body.get("model") or not isinstance(inputs, list) or not inputs:
            return error_response(
                "openai", 400, "invalid_request_error", "'model' and a non-empty 'input' are required"
            )
        if not all(isinstance(text, str) for text in inputs):
            return error_response(
                "openai", 400, "invalid_request_error", "the simulator embeds strings, not token arrays"
            )
        tokens = [_tokens(text) for text in inputs]
        if max(tokens) > config.context_window:
            return error_response(
                "openai",
                400,
                "invalid_request_error",
                f"This model's maximum context length is {config.context_window} tokens, "
                f"however you requested {max(tokens)} tokens",
                "context_length_exceeded",
            )
        dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        vectors = embedder.embed(inputs, dimensions)
        encoding = str(body.get("encoding_format") or "float")
        return JSONResponse(embeddings_answer(vectors, body["model"], sum(tokens), encoding))

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
        ]
    )
    app.state.sim = sim  # SimulatorServer reads it to queue faults and count calls
    return app


class SimulatorServer:
    """Runs the simulator on a real port in a background thread: ``with SimulatorServer() as url:``."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        app = make_app(config or SimConfig())
        self._sim: _Sim = app.state.sim
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="podium-sim", daemon=True)
        self.url = ""

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the provider simulator did not start")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def queue(self, *faults: str | None) -> None:
        """Serve these faults (None: a normal answer) to the next calls, whatever their headers."""
        self._sim.queued.extend(faults)

    @property
    def calls(self) -> int:
        return self._sim.calls

    @property
    def requests(self) -> list[SimRequest]:
        """The calls so far (the newest ``requests_kept`` of them), in the order they arrived."""
        return list(self._sim.requests)

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# models.sim.yaml points its providers here.
DEMO_PORT = 8900


@contextlib.contextmanager
def demo_simulator(console: Console) -> Iterator[None]:
    """The simulator ``--provider sim`` runs around the stages of ``podium up`` and ``podium demo``."""
    # 15% of calls fail (429s, 500s, 529s, resets, broken streams): retries and fallbacks show.
    config = SimConfig(seed=7, fault_rate=0.15, latency_ms=150, jitter_ms=100, retry_after_s=0.2)
    with SimulatorServer(config, port=DEMO_PORT) as url:
        console.print(f"provider simulator (a stand-in, not a model) at {url}, 15% injected faults")
        yield
