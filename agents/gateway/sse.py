"""Server-sent events from OpenAI-compatible and Anthropic streams, turned into text and usage.

:class:`SseDecoder` splits bytes into events however the network cuts them. The two
accumulators read those events: text deltas in order, the finish reason, and usage - OpenAI's
extra usage chunk (``stream_options.include_usage``), Anthropic's cumulative ``message_delta``
usage (overwritten, never added). A stream that ends without its usage is counted from what
arrived and marked ``estimated``; an ``error`` event after a 200 raises :class:`StreamBroken` or
:class:`Overloaded`, so the gateway can fail over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents.gateway.errors import Overloaded, StreamBroken
from agents.gateway.pricing import Usage

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
class OpenAIStream:
    prompt_tokens_estimate: int = 0
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    done: bool = False

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
            delta = (choice.get("delta") or {}).get("content") or ""
            text += delta
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.parts.append(text)
        return text

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(self.prompt_tokens_estimate, estimate_tokens(self.text), 0, estimated=True)


@dataclass
class AnthropicStream:
    prompt_tokens_estimate: int = 0
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    input_tokens: int | None = None
    cache_read_tokens: int = 0
    output_tokens: int | None = None
    done: bool = False

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
        elif kind == "content_block_delta":
            text = str((payload.get("delta") or {}).get("text") or "")
            if text:
                self.parts.append(text)
            return text
        elif kind == "message_delta":
            # Cumulative: the latest value replaces the earlier one.
            usage = payload.get("usage") or {}
            if "output_tokens" in usage:
                self.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
            self.finish_reason = (payload.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif kind == "message_stop":
            self.done = True
        return ""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def final_usage(self) -> Usage:
        if self.done and self.input_tokens is not None and self.output_tokens is not None:
            return Usage(self.input_tokens, self.output_tokens, self.cache_read_tokens)
        return Usage(
            self.input_tokens if self.input_tokens is not None else self.prompt_tokens_estimate,
            max(self.output_tokens or 0, estimate_tokens(self.text)),
            self.cache_read_tokens,
            estimated=True,
        )
