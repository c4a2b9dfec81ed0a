"""Providers over real HTTP against the project's simulator (a stand-in, not a model)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Literal

import anthropic
import httpx
import numpy as np
import openai
import pydantic
import pytest

from agents.gateway.errors import (
    ContextTooLong,
    Overloaded,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    StreamBroken,
    Unreachable,
)
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest, StreamPiece, ToolSpec
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from agents.gateway.providers.wire import anthropic_body, openai_body

REQUEST = ChatRequest(
    model="sim-large", messages=[{"role": "user", "content": "How do I reset my password?"}]
)


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with SimulatorServer(SimConfig(latency_ms=5, jitter_ms=1, timeout_s=3.0, retry_after_s=1.5)) as url:
        yield url


@pytest.fixture
async def providers(sim_url: str) -> AsyncIterator[dict[str, OpenAIProvider | AnthropicProvider]]:
    both = {
        "openai": OpenAIProvider("sim-openai", sim_url + "/v1", api_key="sk-planted-secret"),
        "anthropic": AnthropicProvider("sim-anthropic", sim_url, api_key="sk-ant-planted"),
    }
    yield both
    for provider in both.values():
        await provider.aclose()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_complete_and_stream_give_the_same_text_and_real_usage(providers, kind: str) -> None:  # type: ignore[no-untyped-def]
    provider = providers[kind]
    done = await provider.complete(REQUEST, timeout_s=5)
    assert done.text.startswith("[sim]") and done.usage.output_tokens == len(done.text.split())
    assert done.usage.input_tokens > 0 and not done.usage.estimated
    pieces: list[StreamPiece] = [p async for p in provider.stream(REQUEST, timeout_s=5)]
    final = pieces[-1].final
    assert final is not None and "".join(p.text for p in pieces[:-1]) == final.text == done.text
    assert final.usage == done.usage and final.first_chunk_s is not None
    assert "planted" not in repr(provider)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("rate_limit", RateLimited),
        ("quota", QuotaExhausted),
        ("server_error", ServerError),
        ("overloaded", Overloaded),
        ("reset", Unreachable),
    ],
)
async def test_each_fault_becomes_the_error_the_gateway_acts_on(
    providers, kind: str, fault: str, error: type
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        await providers[kind].complete(REQUEST, timeout_s=5, headers={"x-sim-fault": fault})
    if fault == "rate_limit":
        assert caught.value.retry_after_s == 1.5


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_call_that_hangs_is_cut_at_the_timeout(providers, kind: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unreachable, match=r"no answer within 0\.50s"):
        await providers[kind].complete(REQUEST, timeout_s=0.5, headers={"x-sim-fault": "timeout"})


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["cut_stream", "error_event"])
async def test_a_stream_that_breaks_reports_what_it_used(providers, kind: str, fault: str) -> None:  # type: ignore[no-untyped-def]
    received = []
    with pytest.raises((StreamBroken, Overloaded)) as caught:
        async for piece in providers[kind].stream(REQUEST, timeout_s=5, headers={"x-sim-fault": fault}):
            received.append(piece.text)
    assert received, "some text arrived before the break"
    usage = caught.value.partial_usage
    assert usage is not None and usage.estimated and usage.output_tokens >= 1


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_prompt_beyond_the_context_window_asks_for_a_longer_context_model(
    providers, kind: str
) -> None:  # type: ignore[no-untyped-def]
    huge = ChatRequest(model="sim-small", messages=[{"role": "user", "content": "x" * 40_000}])
    with pytest.raises(ContextTooLong) as caught:
        await providers[kind].complete(huge, timeout_s=5)
    assert caught.value.fallback_to == "longer_context"


def test_the_official_sdks_work_against_the_simulator_unchanged(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url + "/v1", api_key="sim", max_retries=0)
    reply = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens > 0
    chunks = client.chat.completions.create(
        model="sim",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="sim", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-sim-fault": "quota"}
        )

    claude = anthropic.Anthropic(base_url=sim_url, api_key="sim", max_retries=0)
    message = claude.messages.create(model="sim", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    with claude.messages.stream(
        model="sim", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text and final.usage.output_tokens == message.usage.output_tokens  # type: ignore[union-attr]
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(
            model="sim",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "overloaded"},
        )
    assert caught.value.status_code == 529


LOOKUP = ToolSpec(
    "lookup_invoices",
    "Find the invoices of an account",
    {
        "type": "object",
        "properties": {
            "account_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "paid"]},
        },
        "required": ["account_id"],
    },
)
EMAIL = ToolSpec(
    "send_email",
    "Write to the customer",
    {"type": "object", "properties": {"to": {"type": "string", "format": "email"}}, "required": ["to"]},
)
ASK_TOOLS = ChatRequest(
    model="sim",
    messages=[{"role": "user", "content": "Show the paid invoices of A-1001 and email bob@x.io"}],
    tools=(LOOKUP, EMAIL),
)
WANTED = [
    ("lookup_invoices", {"account_id": "A-1001", "status": "paid"}),
    ("send_email", {"to": "bob@x.io"}),
]


@pytest.mark.parametrize(("kind", "prefix"), [("openai", "call_sim_"), ("anthropic", "toolu_sim_")])
async def test_tool_calls_come_back_whole_and_streamed_alike(providers, kind: str, prefix: str) -> None:  # type: ignore[no-untyped-def]
    provider = providers[kind]
    done = await provider.complete(ASK_TOOLS, timeout_s=5)
    assert [(c.name, json.loads(c.arguments)) for c in done.tool_calls] == WANTED
    assert [c.id for c in done.tool_calls] == [prefix + "1", prefix + "2"]
    assert done.finish_reason == ("tool_calls" if kind == "openai" else "tool_use") and done.text == ""
    pieces = [p async for p in provider.stream(ASK_TOOLS, timeout_s=5)]
    final = pieces[-1].final
    assert final is not None and final.tool_calls == done.tool_calls and final.usage == done.usage
    assert final.finish_reason == done.finish_reason and not final.usage.estimated
    # The results go back in the neutral shape; the reply names them.
    conversation = [
        *ASK_TOOLS.messages,
        {"role": "assistant", "content": "", "tool_calls": [c.__dict__ for c in done.tool_calls]},
        *(
            {"role": "tool", "tool_call_id": c.id, "name": c.name, "content": f"{c.name} done"}
            for c in done.tool_calls
        ),
    ]
    answer = await provider.complete(replace(ASK_TOOLS, messages=conversation), timeout_s=5)
    assert answer.tool_calls == () and answer.finish_reason in ("stop", "end_turn")
    assert "lookup_invoices returned: lookup_invoices done" in answer.text
    assert "send_email returned: send_email done" in answer.text


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["cut_stream", "error_event"])
async def test_a_stream_that_breaks_inside_tool_arguments_bills_them(
    providers, kind: str, fault: str
) -> None:  # type: ignore[no-untyped-def]
    whole = await providers[kind].complete(ASK_TOOLS, timeout_s=5)
    with pytest.raises((StreamBroken, Overloaded)) as caught:
        async for _ in providers[kind].stream(ASK_TOOLS, timeout_s=5, headers={"x-sim-fault": fault}):
            pass
    usage = caught.value.partial_usage
    assert usage is not None and usage.estimated
    # Some argument text arrived (billed), not all of it (the break is midway through).
    assert 1 <= usage.output_tokens < whole.usage.output_tokens


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_the_simulator_breaks_a_tool_stream_midway_through_the_arguments(sim_url: str, path: str) -> None:
    body = (
        openai_body(ASK_TOOLS, stream=True)
        if path.endswith("completions")
        else anthropic_body(ASK_TOOLS, stream=True)
    )

    def fragments(lines: Iterator[str] | list[str]) -> list[str]:
        return [line for line in lines if '"arguments": "' in line or "input_json_delta" in line]

    with httpx.Client(base_url=sim_url, timeout=5) as client:
        with client.stream("POST", path, json=body) as response:
            complete = fragments(response.iter_lines())
        received: list[str] = []
        with pytest.raises(httpx.TransportError):  # noqa: SIM117 (the raise is in the reading)
            with client.stream("POST", path, json=body, headers={"x-sim-fault": "cut_stream"}) as response:
                received.extend(response.iter_lines())
    cut = fragments(received)
    assert 0 < len(cut) < len(complete), (len(cut), len(complete))


def test_the_official_sdks_read_the_simulators_tool_calls(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url + "/v1", api_key="sim", max_retries=0)
    body = openai_body(ASK_TOOLS, stream=False)
    reply = client.chat.completions.create(model="sim", messages=body["messages"], tools=body["tools"])
    calls = reply.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == WANTED  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"
    with client.chat.completions.stream(
        model="sim", messages=body["messages"], tools=body["tools"]
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in streamed] == [  # type: ignore[union-attr]
        (c.id, c.function.name, c.function.arguments)
        for c in calls  # type: ignore[union-attr]
    ]

    claude = anthropic.Anthropic(base_url=sim_url, api_key="sim", max_retries=0)
    body = anthropic_body(ASK_TOOLS, stream=False)
    message = claude.messages.create(
        model="sim", max_tokens=256, messages=body["messages"], tools=body["tools"]
    )
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in uses] == WANTED and message.stop_reason == "tool_use"
    with claude.messages.stream(
        model="sim", max_tokens=256, messages=body["messages"], tools=body["tools"]
    ) as stream:
        final_message = stream.get_final_message()
    assert [(b.id, b.name, b.input) for b in final_message.content if b.type == "tool_use"] == [
        (b.id, b.name, b.input) for b in uses
    ]


def test_the_openai_sdk_parses_the_simulators_structured_reply(sim_url: str) -> None:
    class Ticket(pydantic.BaseModel):
        category: Literal["billing", "technical"]
        account: str
        urgent: bool

    client = openai.OpenAI(base_url=sim_url + "/v1", api_key="sim", max_retries=0)
    reply = client.chat.completions.parse(
        model="sim",
        messages=[{"role": "user", "content": "A technical fault on account A-7"}],
        response_format=Ticket,
    )
    assert reply.choices[0].message.parsed == Ticket(category="technical", account="A-7", urgent=False)


EMBED = EmbeddingRequest("text-embedding-3-small", ("reset my password", "password reset", "invoices"))


async def test_embeddings_come_back_in_order_with_real_usage(providers) -> None:  # type: ignore[no-untyped-def]
    answer = await providers["openai"].embed(EMBED, timeout_s=5)
    assert answer.vectors.shape == (3, 256) and answer.dimensions == 256
    assert answer.model == EMBED.model and answer.provider == "sim-openai"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens == 0
    one = await providers["openai"].embed(EmbeddingRequest(EMBED.model, ("invoices",)), timeout_s=5)
    assert np.allclose(one.vectors[0], answer.vectors[2])


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("rate_limit", RateLimited),
        ("quota", QuotaExhausted),
        ("server_error", ServerError),
        ("overloaded", Overloaded),
        ("reset", Unreachable),
    ],
)
async def test_each_embeddings_fault_becomes_the_error_a_chat_call_gets(
    providers, fault: str, error: type
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        await providers["openai"].embed(EMBED, timeout_s=5, headers={"x-sim-fault": fault})
    if fault == "rate_limit":
        assert caught.value.retry_after_s == 1.5


async def test_an_embeddings_call_that_hangs_is_cut_at_the_timeout(providers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unreachable, match=r"no answer within 0\.50s"):
        await providers["openai"].embed(EMBED, timeout_s=0.5, headers={"x-sim-fault": "timeout"})


async def test_an_input_beyond_the_context_window_is_a_context_error(providers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContextTooLong):
        await providers["openai"].embed(EmbeddingRequest("e", ("x" * 40_000,)), timeout_s=5)


async def test_anthropic_has_no_embeddings_and_says_so(providers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestRejected, match="Anthropic has no embeddings API") as caught:
        await providers["anthropic"].embed(EMBED, timeout_s=5)
    assert not caught.value.retryable and not caught.value.failover


def test_the_openai_sdk_embeds_against_the_simulator(sim_url: str) -> None:
    with openai.OpenAI(base_url=sim_url + "/v1", api_key="sim", max_retries=0) as client:
        _sdk_embeds(client)


def _sdk_embeds(client: openai.OpenAI) -> None:
    texts = list(EMBED.inputs)
    # The SDK asks for base64 unless told otherwise, and decodes it; floats when asked for.
    packed = client.embeddings.create(model="text-embedding-3-small", input=texts)
    floats = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert [d.index for d in packed.data] == [0, 1, 2] and len(packed.data[0].embedding) == 256
    assert np.allclose([d.embedding for d in packed.data], [d.embedding for d in floats.data], atol=1e-6)
    assert packed.usage.prompt_tokens == floats.usage.prompt_tokens > 0
    short = client.embeddings.create(model="text-embedding-3-small", input="one text", dimensions=64)
    assert len(short.data) == 1 and len(short.data[0].embedding) == 64
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e", input=texts, extra_headers={"x-sim-fault": "rate_limit"})
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="e", input=texts, extra_headers={"x-sim-fault": "server_error"})
