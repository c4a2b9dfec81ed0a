"""Providers over real HTTP against the project's simulator (a stand-in, not a model)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from agents.gateway.errors import (
    ContextTooLong,
    Overloaded,
    QuotaExhausted,
    RateLimited,
    ServerError,
    StreamBroken,
    Unreachable,
)
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.protocol import ChatRequest, StreamPiece
from agents.gateway.providers.simulator import SimConfig, SimulatorServer

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
