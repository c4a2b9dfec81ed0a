"""Server-sent events from OpenAI-compatible and Anthropic streams, turned into text, tool calls
and usage.

:class:`SseDecoder` splits bytes into events however the network cuts them. The two
accumulators read those events: text deltas in order, the finish reason, tool calls and usage -
OpenAI's extra usage chunk (``stream_options.include_usage``), Anthropic's cumulative
``message_delta`` usage (overwritten, never added). Tool calls arrive in pieces: OpenAI's
``delta.tool_calls[{index, id?, function: {name?, arguments}}]`` (parallel calls told apart by
``index``), Anthropic's ``tool_use`` content block followed by ``input_json_delta`` fragments (by
block index); the arguments are the fragments joined. A stream that ends without its usage is
counted from what arrived, argument text included, and marked ``estimated``; an ``error`` event
after a 200 raises :class:`StreamBroken` or :class:`Overloaded`, so the gateway can fail over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.gateway.errors import Overloaded, StreamBroken
from agents.gateway.pricing import Usage

if TYPE_CHECKING:
    from agents.gateway.providers.protocol import ToolCall

__all__ = ["AnthropicStream", "OpenAIStream", "SseDecoder", "SseEvent", "estimate_tokens"]


def _json(event: SseEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.data) if event.data else {}
    except json.JSONDecodeError as exc:
        raise StreamBroken(f"malformed stream event {event.event!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise StreamBroken(f"stream event {event.event!r} is not an object")
    return value


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


class SseDecoder:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        events = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            name, data = "message", []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith(":"):
                    continue  # a comment / keep-alive
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
            if data or name != "message":
                events.append(SseEvent(name, "\n".join(data)))
        return events


def estimate_tokens(text: str) -> int:
    """About four characters a token: good enough to bill a cut stream, marked as an estimate."""
    return max(1, (len(text) + 3) // 4) if text else 0


@dataclass
class _PendingCall:
    """A tool call while its pieces arrive."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def written(self) -> str:
        return self.name + "".join(self.arguments)


def _calls(pending: dict[int, _PendingCall]) -> tuple[ToolCall, ...]:
    # Imported here: the protocol module imports this one (estimate_tokens).
    from agents.gateway.providers.protocol import ToolCall

    return tuple(
        ToolCall(call.id, call.name, "".join(call.arguments) or "{}") for _, call in sorted(pending.items())
    )


@dataclass
class OpenAIStream:
    prompt_tokens_estimate: int = 0
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    done: bool = False
    calls: dict[int, _PendingCall] = field(default_factory=dict)

    def add(self, event: SseEvent) -> str:
        """The text this event adds ('' for none)."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = _json(event)
        if "error" in chunk:
            raise StreamBroken(f"error event mid-stream: {chunk['error']}")
        if chunk.get("usage"):
            u = chunk["usage"]
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
            self.usage = Usage(u.get("prompt_tokens", 0) - cached, u.get("completion_tokens", 0), cached)
        text = ""
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for piece in delta.get("tool_calls") or ():
                self._add_call_piece(piece)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.parts.append(text)
        return text

    def _add_call_piece(self, piece: dict[str, Any]) -> None:
        # The first piece of a call names it; the id and name are sent once, not in fragments
        # (some servers repeat them: the first one stays). Only the arguments are concatenated.
        call = self.calls.setdefault(int(piece.get("index") or 0), _PendingCall())
        function = piece.get("function") or {}
        call.id = call.id or str(piece.get("id") or "")
        call.name = call.name or str(function.get("name") or "")
        if function.get("arguments"):
            call.arguments.append(str(function["arguments"]))

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return _calls(self.calls)

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        written = self.text + "".join(c.written() for c in self.calls.values())
        return Usage(self.prompt_tokens_estimate, estimate_tokens(written), 0, estimated=True)


@dataclass
class AnthropicStream:
    """``reply_tool``: the name of the tool that carries a structured reply (the request had a
    ``response_schema``, see :mod:`agents.gateway.providers.wire`): its input fragments are the
    reply's text, streamed as text, and not a tool call."""

    prompt_tokens_estimate: int = 0
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    input_tokens: int | None = None
    cache_read_tokens: int = 0
    output_tokens: int | None = None
    done: bool = False
    reply_tool: str | None = None
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    reply_blocks: set[int] = field(default_factory=set)

    def add(self, event: SseEvent) -> str:
        if event.event == "ping":
            return ""
        payload = _json(event)
        kind = payload.get("type", event.event)
        if kind == "error":
            error = payload.get("error") or {}
            message = f"error event mid-stream: {error.get('type')}: {error.get('message')}"
            if error.get("type") == "overloaded_error":
                raise Overloaded(message)
            raise StreamBroken(message)
        if kind == "message_start":
            usage = (payload.get("message") or {}).get("usage") or {}
            self.input_tokens = usage.get("input_tokens", 0)
            self.cache_read_tokens = usage.get("cache_read_input_tokens", 0) or 0
            self.output_tokens = usage.get("output_tokens")
        elif kind == "content_block_start":
            self._start_block(int(payload.get("index") or 0), payload.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._delta(int(payload.get("index") or 0), payload.get("delta") or {})
        elif kind == "message_delta":
            # Cumulative: the latest value replaces the earlier one.
            usage = payload.get("usage") or {}
            if "output_tokens" in usage:
                self.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
            self.finish_reason = (payload.get("delta") or {}).get("stop_reason") or self.finish_reason
            if self.finish_reason == "tool_use" and self.reply_blocks and not self.calls:
                # As in wire.anthropic_reply: the reply was the only call, so the turn is an answer.
                self.finish_reason = "end_turn"
        elif kind == "message_stop":
            self.done = True
        return ""

    def _start_block(self, index: int, block: dict[str, Any]) -> None:
        if block.get("type") != "tool_use":
            return
        if self.reply_tool is not None and block.get("name") == self.reply_tool:
            self.reply_blocks.add(index)
            return
        call = self.calls[index] = _PendingCall(str(block.get("id") or ""), str(block.get("name") or ""))
        if block.get("input"):  # the API starts with {} and streams the input; a full one is kept
            call.arguments.append(json.dumps(block["input"]))

    def _delta(self, index: int, delta: dict[str, Any]) -> str:
        if delta.get("type") == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            if index in self.calls:
                if fragment:
                    self.calls[index].arguments.append(fragment)
                return ""
            if index not in self.reply_blocks:
                return ""  # the input of a block that never started: nothing to attach it to
            text = fragment
        else:
            text = str(delta.get("text") or "")
        if text:
            self.parts.append(text)
        return text

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return _calls(self.calls)

    def final_usage(self) -> Usage:
        if self.done and self.input_tokens is not None and self.output_tokens is not None:
            return Usage(self.input_tokens, self.output_tokens, self.cache_read_tokens)
        written = self.text + "".join(c.written() for c in self.calls.values())
        return Usage(
            self.input_tokens if self.input_tokens is not None else self.prompt_tokens_estimate,
            max(self.output_tokens or 0, estimate_tokens(written)),
            self.cache_read_tokens,
            estimated=True,
        )
