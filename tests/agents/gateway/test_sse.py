import json

import pytest

from agents.gateway.errors import Overloaded, StreamBroken
from agents.gateway.pricing import Usage
from agents.gateway.sse import AnthropicStream, OpenAIStream, SseDecoder

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
