import json
from typing import Any

import pytest

from agents.gateway.errors import Overloaded, StreamBroken
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ToolCall
from agents.gateway.sse import AnthropicStream, OpenAIStream, SseDecoder, SseEvent, estimate_tokens

OPENAI = (
    b"".join(
        f"data: {json.dumps(chunk)}\n\n".encode()
        for chunk in [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            },
        ]
    )
    + b"data: [DONE]\n\n"
)


def anthropic_events() -> bytes:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5}},
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0}),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi "}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "there"}},
        ),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}},
        ),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(body)}\n\n".encode() for name, body in events)


def feed_in_pieces(data: bytes, size: int) -> list:  # type: ignore[type-arg]
    decoder = SseDecoder()
    events = []
    for i in range(0, len(data), size):
        events += decoder.feed(data[i : i + size])
    return events


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_openai_stream_text_finish_and_usage_whatever_the_chunking(size: int) -> None:
    stream = OpenAIStream()
    for event in feed_in_pieces(OPENAI, size):
        stream.add(event)
    assert (stream.text, stream.finish_reason, stream.done) == ("Hello", "stop", True)
    assert stream.final_usage() == Usage(input_tokens=8, output_tokens=2, cache_read_tokens=4)


def test_a_cut_openai_stream_is_counted_from_what_arrived_and_marked_estimated() -> None:
    stream = OpenAIStream(prompt_tokens_estimate=30)
    for event in feed_in_pieces(OPENAI[: OPENAI.index(b'finish_reason": "stop')], 64):
        stream.add(event)
    usage = stream.final_usage()
    assert (
        stream.text == "Hello" and usage.estimated and usage.input_tokens == 30 and usage.output_tokens >= 1
    )


@pytest.mark.parametrize("size", [1, 13, 4096])
def test_anthropic_usage_is_cumulative_and_overwritten_not_added(size: int) -> None:
    stream = AnthropicStream()
    for event in feed_in_pieces(anthropic_events(), size):
        stream.add(event)
    assert (stream.text, stream.finish_reason) == ("Hi there", "end_turn")
    assert stream.final_usage() == Usage(input_tokens=25, output_tokens=9, cache_read_tokens=5)


def test_an_error_event_after_a_200_breaks_the_stream() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    events = feed_in_pieces(anthropic_events(), 50)[:4] + SseDecoder().feed(
        f"event: error\ndata: {json.dumps(error)}\n\n".encode()
    )
    stream = AnthropicStream()
    with pytest.raises(Overloaded, match="mid-stream"):
        for event in events:
            stream.add(event)
    assert stream.text == "Hi "  # what arrived before the failure; the gateway discards it
    with pytest.raises(StreamBroken):
        OpenAIStream().add(SseDecoder().feed(b'data: {"error": {"message": "boom"}}\n\n')[0])


def test_a_malformed_event_is_a_broken_stream_not_a_crash() -> None:
    with pytest.raises(StreamBroken, match="malformed"):
        AnthropicStream().add(SseDecoder().feed(b'event: content_block_delta\ndata: {"type": "cont\n\n')[0])


def test_comments_and_crlf_are_tolerated() -> None:
    events = SseDecoder().feed(b": keep-alive\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("ping", "{}")]


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def call_delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}]}


# Two parallel calls whose argument fragments interleave, as a provider may send them.
OPENAI_TOOLS = sse(
    [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        call_delta(0, id="call_a", type="function", function={"name": "lookup_invoices", "arguments": ""}),
        call_delta(0, function={"arguments": '{"acc'}),
        call_delta(1, id="call_b", type="function", function={"name": "send_email", "arguments": ""}),
        call_delta(0, function={"arguments": 'ount": "A-1001"}'}),
        call_delta(1, function={"arguments": '{"to": "x@y.z"}'}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 11}},
    ]
)
OPENAI_CALLS = (
    ToolCall("call_a", "lookup_invoices", '{"account": "A-1001"}'),
    ToolCall("call_b", "send_email", '{"to": "x@y.z"}'),
)


def anthropic_tool_events(reply_tool: str = "lookup_invoices") -> bytes:
    def event(kind: str, **payload: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, **payload}

    def start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return event("content_block_start", index=index, content_block=block)

    def delta(index: int, **fields: Any) -> tuple[str, dict[str, Any]]:
        return event("content_block_delta", index=index, delta=fields)

    events = [
        event("message_start", message={"usage": {"input_tokens": 30, "output_tokens": 1}}),
        start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Checking."),
        event("content_block_stop", index=0),
        start(1, {"type": "tool_use", "id": "toolu_1", "name": reply_tool, "input": {}}),
        delta(1, type="input_json_delta", partial_json=""),
        delta(1, type="input_json_delta", partial_json='{"account"'),
        delta(1, type="input_json_delta", partial_json=': "A-1001"}'),
        event("content_block_stop", index=1),
        start(2, {"type": "tool_use", "id": "toolu_2", "name": "send_email", "input": {}}),
        delta(2, type="input_json_delta", partial_json='{"to": "x@y.z"}'),
        event("content_block_stop", index=2),
        event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 19}),
        event("message_stop"),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(body)}\n\n".encode() for name, body in events)


ANTHROPIC_CALLS = (
    ToolCall("toolu_1", "lookup_invoices", '{"account": "A-1001"}'),
    ToolCall("toolu_2", "send_email", '{"to": "x@y.z"}'),
)


def run(stream: OpenAIStream | AnthropicStream, events: list[SseEvent]) -> str:
    return "".join(stream.add(event) for event in events)


def test_openai_tool_call_deltas_add_up_by_index_wherever_the_bytes_are_cut() -> None:
    for cut in range(len(OPENAI_TOOLS) + 1):
        decoder = SseDecoder()
        stream = OpenAIStream()
        text = run(stream, decoder.feed(OPENAI_TOOLS[:cut]) + decoder.feed(OPENAI_TOOLS[cut:]))
        assert (text, stream.tool_calls, stream.finish_reason, stream.done) == (
            "",
            OPENAI_CALLS,
            "tool_calls",
            True,
        ), cut
    assert stream.final_usage() == Usage(input_tokens=40, output_tokens=11)


def test_anthropic_tool_use_blocks_add_up_by_index_wherever_the_bytes_are_cut() -> None:
    data = anthropic_tool_events()
    for cut in range(len(data) + 1):
        decoder = SseDecoder()
        stream = AnthropicStream()
        text = run(stream, decoder.feed(data[:cut]) + decoder.feed(data[cut:]))
        assert (text, stream.tool_calls, stream.finish_reason) == (
            "Checking.",
            ANTHROPIC_CALLS,
            "tool_use",
        ), cut
    assert stream.final_usage() == Usage(input_tokens=30, output_tokens=19)


def written_in(events: list[SseEvent]) -> str:
    """Every piece of text, name and argument fragment in these events, read without the
    accumulators: what a cut stream must bill at least."""

    def walk(value: Any) -> str:
        if isinstance(value, dict):
            own = "".join(
                str(v)
                for k, v in value.items()
                if k in ("text", "partial_json", "arguments", "name", "content") and isinstance(v, str)
            )
            return own + "".join(walk(v) for v in value.values() if isinstance(v, dict | list))
        if isinstance(value, list):
            return "".join(walk(v) for v in value)
        return ""

    return "".join(walk(json.loads(e.data)) for e in events if e.data.startswith("{"))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_stream_cut_inside_arguments_bills_the_argument_text_it_saw(kind: str) -> None:
    events = SseDecoder().feed(OPENAI_TOOLS if kind == "openai" else anthropic_tool_events())
    usage_at = next(i for i, e in enumerate(events) if '"usage"' in e.data and i > 0)
    for count in range(1, usage_at):  # every cut before the provider's usage arrives
        stream = OpenAIStream(prompt_tokens_estimate=33) if kind == "openai" else AnthropicStream()
        run(stream, events[:count])
        usage = stream.final_usage()
        assert usage.estimated and not stream.done, count
        assert usage.output_tokens >= estimate_tokens(written_in(events[:count])), count
        assert usage.input_tokens == (33 if kind == "openai" else 30)
    # Cut right after the first fragment of the first call's arguments: the call shows what came.
    stream = OpenAIStream() if kind == "openai" else AnthropicStream()
    run(stream, events[:3] if kind == "openai" else events[:7])
    first = ToolCall(
        *(
            ("call_a", "lookup_invoices", '{"acc')
            if kind == "openai"
            else ("toolu_1", "lookup_invoices", '{"account"')
        )
    )
    assert stream.tool_calls == (first,)


def test_the_structured_reply_tool_streams_as_text_and_is_no_call() -> None:
    stream = AnthropicStream(reply_tool="lookup_invoices")
    text = run(stream, SseDecoder().feed(anthropic_tool_events()))
    assert text == 'Checking.{"account": "A-1001"}' and stream.tool_calls == ANTHROPIC_CALLS[1:]
    assert stream.finish_reason == "tool_use"  # another call is left for the caller
    alone = AnthropicStream(reply_tool="reply")
    only_reply = anthropic_tool_events("reply").replace(b'"name": "send_email"', b'"name": "reply"')
    run(alone, SseDecoder().feed(only_reply))
    assert alone.tool_calls == () and alone.finish_reason == "end_turn"
