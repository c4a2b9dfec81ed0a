"""Neutral requests to both wire protocols and their replies back: exact bodies, no I/O."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agents.gateway.errors import RequestRejected, ServerError
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest, ToolCall, ToolSpec
from agents.gateway.providers.wire import (
    REPLY_TOOL,
    anthropic_body,
    anthropic_messages,
    anthropic_reply,
    anthropic_tool_choice,
    openai_body,
    openai_embedding_body,
    openai_embeddings,
    openai_messages,
    openai_reply,
    openai_tool_choice,
)

LOOKUP = ToolSpec(
    "lookup_invoices",
    "Find the invoices of an account",
    {"type": "object", "properties": {"account": {"type": "string"}}, "required": ["account"]},
)
REFUND = ToolSpec("refund_invoice", "Refund one invoice", {"type": "object", "properties": {}})

# A conversation with two parallel calls, one of which failed, then the user speaks again.
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "I was charged twice on A-1"},
    {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "c1", "name": "lookup_invoices", "arguments": '{"account": "A-1"}'},
            {"id": "c2", "name": "refund_invoice", "arguments": "{}"},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "lookup_invoices", "content": "[INV-1, INV-2]"},
    {"role": "tool", "tool_call_id": "c2", "name": "refund_invoice", "content": "denied", "is_error": True},
    {"role": "user", "content": "and?"},
]


def request(**fields: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "m", "messages": CONVERSATION, "tools": (LOOKUP, REFUND)}
    return ChatRequest(**(base | fields))


def test_openai_messages_carry_calls_and_results() -> None:
    assert openai_messages(CONVERSATION, system="be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "I was charged twice on A-1"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup_invoices", "arguments": '{"account": "A-1"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "refund_invoice", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "[INV-1, INV-2]"},
        {"role": "tool", "tool_call_id": "c2", "content": "error: denied"},
        {"role": "user", "content": "and?"},
    ]
    calls_only = [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "x"}]}]
    assert openai_messages(calls_only)[0]["content"] is None
    assert openai_messages(calls_only)[0]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_openai_body_sends_tools_their_choice_and_the_schema() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    body = openai_body(request(response_schema=schema), stream=True)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_invoices",
                "description": "Find the invoices of an account",
                "parameters": LOOKUP.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "refund_invoice",
                "description": "Refund one invoice",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": schema, "strict": True},
    }
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    plain = openai_body(ChatRequest("m", [{"role": "user", "content": "hi"}], tool_choice="none"), False)
    assert set(plain) == {"model", "messages", "max_tokens"}  # no tools: no tool_choice either


@pytest.mark.parametrize(
    ("choice", "openai", "anthropic"),
    [
        (None, "auto", {"type": "auto"}),
        ("auto", "auto", {"type": "auto"}),
        ("required", "required", {"type": "any"}),
        ("none", "none", None),
        (
            "refund_invoice",
            {"type": "function", "function": {"name": "refund_invoice"}},
            {"type": "tool", "name": "refund_invoice"},
        ),
    ],
)
def test_tool_choice_maps_to_each_protocol(choice: str | None, openai: Any, anthropic: Any) -> None:
    assert openai_tool_choice(request(tool_choice=choice)) == openai
    assert anthropic_tool_choice(request(tool_choice=choice)) == anthropic


def test_forcing_a_tool_the_request_lacks_is_refused() -> None:
    with pytest.raises(RequestRejected, match="'send_email'"):
        openai_body(request(tool_choice="send_email"), stream=False)
    with pytest.raises(RequestRejected, match="'send_email'"):
        anthropic_body(request(tool_choice="send_email"), stream=False)


def test_anthropic_messages_merge_results_into_one_user_message_results_first() -> None:
    assert anthropic_messages(CONVERSATION) == [
        {"role": "user", "content": "I was charged twice on A-1"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "c1", "name": "lookup_invoices", "input": {"account": "A-1"}},
                {"type": "tool_use", "id": "c2", "name": "refund_invoice", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "[INV-1, INV-2]", "is_error": False},
                {"type": "tool_result", "tool_use_id": "c2", "content": "denied", "is_error": True},
                {"type": "text", "text": "and?"},
            ],
        },
    ]


def test_anthropic_messages_merge_consecutive_turns_and_keep_what_cannot_be_an_object() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "x", "arguments": "{oops"}]},
        {"role": "user", "content": "three"},
        {"role": "tool", "tool_call_id": "c", "name": "x", "content": "bad arguments", "is_error": True},
    ]
    assert anthropic_messages(messages) == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c", "name": "x", "input": {"_raw_arguments": "{oops"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c", "content": "bad arguments", "is_error": True},
                {"type": "text", "text": "three"},
            ],
        },
    ]


def test_anthropic_body_tools_system_and_none() -> None:
    body = anthropic_body(request(system="be brief", tool_choice="required"), stream=True)
    assert body["tools"] == [
        {
            "name": "lookup_invoices",
            "description": "Find the invoices of an account",
            "input_schema": LOOKUP.parameters,
        },
        {
            "name": "refund_invoice",
            "description": "Refund one invoice",
            "input_schema": {"type": "object", "properties": {}},
        },
    ]
    assert body["tool_choice"] == {"type": "any"} and body["system"] == "be brief" and body["stream"]
    # "none" on a fresh conversation: no tools at all.
    fresh = anthropic_body(request(messages=[{"role": "user", "content": "hi"}], tool_choice="none"), False)
    assert "tools" not in fresh and "tool_choice" not in fresh and fresh["messages"][0]["content"] == "hi"
    # "none" once the conversation holds calls: the API wants the tools defined, so an explicit none.
    later = anthropic_body(request(tool_choice="none"), False)
    assert len(later["tools"]) == 2 and later["tool_choice"] == {"type": "none"}
    inline = anthropic_body(
        ChatRequest("m", [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]), False
    )
    assert inline["system"] == "S" and inline["messages"] == [{"role": "user", "content": "q"}]


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def test_a_response_schema_is_a_forced_reply_tool_on_anthropic() -> None:
    alone = anthropic_body(
        ChatRequest("m", [{"role": "user", "content": "q"}], response_schema=SCHEMA), False
    )
    assert alone["tools"] == [
        {"name": "reply", "description": alone["tools"][0]["description"], "input_schema": SCHEMA}
    ]
    assert alone["tool_choice"] == {"type": "tool", "name": REPLY_TOOL}
    # With tools of its own the model must call one of them or answer through reply.
    both = anthropic_body(request(response_schema=SCHEMA), False)
    assert [t["name"] for t in both["tools"]] == ["lookup_invoices", "refund_invoice", "reply"]
    assert both["tool_choice"] == {"type": "any"}
    forbidden = anthropic_body(request(response_schema=SCHEMA, tool_choice="none"), False)
    assert forbidden["tool_choice"] == {"type": "tool", "name": "reply"}
    with pytest.raises(RequestRejected, match="clashes"):
        anthropic_body(request(tools=(ToolSpec("reply", "mine"),), response_schema=SCHEMA), False)


def test_openai_replies_back_with_parallel_calls() -> None:
    reply = openai_reply(
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "x", "arguments": '{"n": 1}'}},
                    {"id": "b", "type": "function", "function": {"name": "y", "arguments": ""}},
                ],
            },
            "finish_reason": "tool_calls",
        }
    )
    assert reply.text == "" and reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (ToolCall("a", "x", '{"n": 1}'), ToolCall("b", "y", "{}"))
    assert openai_reply({"message": {"content": "hi"}, "finish_reason": "stop"}).tool_calls == ()


def test_anthropic_replies_back_with_input_as_json_text_and_the_reply_tool_as_text() -> None:
    message = {
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "t1", "name": "x", "input": {"n": 1, "s": "é"}},
            {"type": "tool_use", "id": "t2", "name": "y", "input": {}},
        ],
        "stop_reason": "tool_use",
    }
    reply = anthropic_reply(message)
    assert reply.text == "Looking." and reply.finish_reason == "tool_use"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("t1", "x", {"n": 1, "s": "é"}),
        ("t2", "y", {}),
    ]
    structured = {
        "content": [
            {"type": "text", "text": "Here you are:"},
            {"type": "tool_use", "id": "t3", "name": "reply", "input": {"ok": True}},
        ],
        "stop_reason": "tool_use",
    }
    answer = anthropic_reply(structured, structured=True)
    assert (json.loads(answer.text), answer.tool_calls, answer.finish_reason) == (
        {"ok": True},
        (),
        "end_turn",
    )
    # Without a schema in the request, a tool named reply is just a tool.
    assert anthropic_reply(structured).tool_calls[0].name == "reply"


def test_both_protocols_carry_the_same_conversation() -> None:
    """What a fallback relies on: every call id, result and is_error survives either way."""
    oa = openai_body(request(), False)["messages"]
    an = anthropic_body(request(), False)["messages"]
    assert [m["tool_call_id"] for m in oa if m["role"] == "tool"] == ["c1", "c2"]
    results = [
        b for m in an if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"
    ]
    assert [(b["tool_use_id"], b["is_error"]) for b in results] == [("c1", False), ("c2", True)]


def test_an_embeddings_body_asks_for_floats() -> None:
    body = openai_embedding_body(EmbeddingRequest("text-embedding-3-small", ("a", "b")))
    assert body == {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"}
    shorter = openai_embedding_body(EmbeddingRequest("text-embedding-3-small", ("a",), dimensions=256))
    assert shorter["dimensions"] == 256


def test_embeddings_are_read_in_index_order_with_their_usage() -> None:
    data = {
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ],
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    vectors, usage = openai_embeddings(data, 2)
    assert vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]] and vectors.dtype == np.float32
    assert usage == Usage(7, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, r"rows \[0\] for 2 inputs"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}, r"rows \[0, 0\]"),
        (
            {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]},
            "cannot be read",
        ),
        ({"data": [{"index": 0}, {"index": 1}]}, "cannot be read: KeyError"),
        ({"error": "nothing"}, r"rows \[\] for 2 inputs"),
        ("not an object", r"rows \[\] for 2 inputs"),
    ],
)
def test_an_embeddings_answer_that_does_not_fit_is_the_providers_fault(data: Any, message: str) -> None:
    with pytest.raises(ServerError, match=message) as caught:
        openai_embeddings(data, 2)
    assert caught.value.retryable
