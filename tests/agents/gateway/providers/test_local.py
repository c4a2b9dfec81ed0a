"""The local provider serves the local models it is given, behind the provider interface."""

import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.errors import LocalModelFailed, Overloaded, RequestRejected
from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.local import (
    INLINE_EMBED_CHARS,
    LocalEmbedder,
    LocalModel,
    LocalProvider,
    LocalTurn,
    ToolModel,
)
from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest
from agents.offline.grounded import GROUNDED_MODELS, Source, grounded_prompt

SOURCES = [
    Source(
        "Reset a password",
        "https://d/pw",
        "Click Forgot password on the sign-in page. The link expires in 1 hour.",
    ),
    Source(
        "Invoices",
        "https://d/inv",
        "Invoices are emailed on the 1st. Add a VAT number under Settings > Billing.",
    ),
]


async def test_the_provider_reads_the_same_prompt_a_hosted_model_gets() -> None:
    provider = LocalProvider(models=GROUNDED_MODELS)
    messages = grounded_prompt("Where do I add our VAT number?", "billing", SOURCES)
    done = await provider.complete(ChatRequest("local-extractive", messages), timeout_s=1)
    assert "VAT number under Settings > Billing. [2]" in done.text
    assert done.provider == "local" and done.finish_reason == "stop"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    pieces = [p async for p in provider.stream(ChatRequest("local-extractive", messages), timeout_s=1)]
    assert "".join(p.text for p in pieces[:-1]) == pieces[-1].final.text == done.text  # type: ignore[union-attr]


async def test_the_reply_model_names_the_intent_and_unknown_models_are_refused() -> None:
    provider = LocalProvider(models=GROUNDED_MODELS)
    messages = grounded_prompt("Please cancel our plan", "cancellation", [])
    reply = await provider.complete(ChatRequest("local-reply", messages), timeout_s=1)
    assert "billing team" in reply.text
    with pytest.raises(RequestRejected, match="no model 'gpt-x'"):
        await provider.complete(ChatRequest("gpt-x", messages), timeout_s=1)


async def test_a_provider_knows_only_the_models_it_was_given_and_says_which_it_has() -> None:
    messages = grounded_prompt("Please cancel our plan", "cancellation", [])
    with pytest.raises(RequestRejected, match=r"no model 'local-reply' \(it has none\)"):
        await LocalProvider().complete(ChatRequest("local-reply", messages), timeout_s=1)
    echo = LocalProvider(models={"local-echo": str.upper})
    done = await echo.complete(ChatRequest("local-echo", [{"role": "user", "content": "hi"}]), timeout_s=1)
    assert done.text == "HI"
    with pytest.raises(RequestRejected, match=r"\(it has local-echo\)"):
        await echo.complete(ChatRequest("local-reply", messages), timeout_s=1)


def _broken(prompt: str) -> str:
    return {"intent": "billing"}["language"]  # a model's own bug: a missing key


def _broken_turn(request: ChatRequest) -> LocalTurn:
    raise ValueError(f"cannot plan {request.model}")


@pytest.mark.parametrize(
    ("model", "foreign"),
    [(_broken, KeyError), (ToolModel(turn=_broken_turn), ValueError)],
    ids=["model", "tool-model"],
)
async def test_a_local_models_own_error_is_translated_to_fail_over_without_retrying(
    model: LocalModel | ToolModel, foreign: type[Exception]
) -> None:
    provider = LocalProvider(models={"local-broken": model})
    said = rf"local model 'local-broken' raised {foreign.__name__}"
    with pytest.raises(LocalModelFailed, match=said) as caught:
        await provider.complete(ChatRequest("local-broken", [{"role": "user", "content": "hi"}]), timeout_s=1)
    assert isinstance(caught.value.__cause__, foreign)
    assert caught.value.failover and not caught.value.retryable
    assert caught.value.dead_letter_reason == "local_model_failed"


async def test_an_error_of_the_gateways_own_raised_by_a_local_model_keeps_its_meaning() -> None:
    def overloaded(prompt: str) -> str:
        raise Overloaded("the local model is busy")

    provider = LocalProvider(models={"local-busy": overloaded})
    with pytest.raises(Overloaded, match="busy"):
        await provider.complete(ChatRequest("local-busy", [{"role": "user", "content": "hi"}]), timeout_s=1)


async def test_the_chain_moves_on_from_a_broken_local_model_at_once() -> None:
    providers = {
        "broken": LocalProvider("broken", models={"local-x": _broken}),
        "local": LocalProvider(models={"local-x": str.upper}),
    }
    gateway = ModelGateway(providers, PriceTable({"local-x": Price(0.0, 0.0)}))
    chain = (Route("broken", "local-x"), Route("local", "local-x"))
    result = await gateway.complete(
        ChatRequest("", [{"role": "user", "content": "hi"}]),
        CallPolicy(chain=chain, backoff=Backoff(base_s=0.01, cap_s=0.05, max_retries=2), timeout_s=5.0),
    )
    assert result.completion.text == "HI"
    assert [a.outcome for a in result.attempts] == ["local_model_failed", "ok"]
    assert (result.retries, result.fallbacks) == (0, 1)


async def test_the_local_provider_embeds_with_the_real_wordllama() -> None:
    from agents import local_models
    from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder

    provider = LocalProvider(models=local_models())
    texts = ("How do I reset my password?", "I forgot my password", "Invoices are emailed monthly")
    answer = await provider.embed(EmbeddingRequest(EMBEDDING_MODEL, texts), timeout_s=5)
    assert answer.vectors.shape == (3, 256) and answer.dimensions == 256 and answer.provider == "local"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens == 0
    assert np.allclose(answer.vectors, WordLlamaEmbedder.load().embed(texts), atol=1e-6)
    rows = answer.vectors
    assert rows[0] @ rows[1] > rows[0] @ rows[2]
    # Through the gateway: unit rows, free, and the same rows from a batch large enough for a thread.
    gateway = ModelGateway({"local": provider}, PriceTable({EMBEDDING_MODEL: Price(0, 0)}))
    policy = CallPolicy((Route("local", EMBEDDING_MODEL),), operation="embeddings")
    many = [f"{texts[i % 3]} (copy {i})" for i in range(300)]
    assert sum(map(len, many)) > INLINE_EMBED_CHARS
    result = await gateway.embed(many, policy)
    assert result.cost_usd == 0 and np.allclose(
        np.linalg.norm(result.embeddings.vectors, axis=1), 1, atol=1e-5
    )
    assert np.allclose(
        result.embeddings.vectors[7], (await gateway.embed([many[7]], policy)).embeddings.vectors[0]
    )


async def test_a_large_batch_is_embedded_off_the_event_loop() -> None:
    import threading

    threads: list[str] = []

    class Recording:
        dimensions = 2

        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            threads.append(threading.current_thread().name)
            return np.ones((len(texts), 2), np.float32)

    provider = LocalProvider(models={"rec": Recording()})
    await provider.embed(EmbeddingRequest("rec", ("short",)), timeout_s=1)
    await provider.embed(EmbeddingRequest("rec", ("x" * (INLINE_EMBED_CHARS + 1),)), timeout_s=1)
    assert threads[0] == threading.current_thread().name and threads[1] != threads[0]


async def test_embedding_and_chat_models_are_not_mixed_up() -> None:
    from agents.offline.embedder import EMBEDDING_MODELS

    provider = LocalProvider(models={**GROUNDED_MODELS, **EMBEDDING_MODELS})
    with pytest.raises(RequestRejected, match="is a chat model; it does not embed"):
        await provider.embed(EmbeddingRequest("local-extractive", ("hi",)), timeout_s=1)
    with pytest.raises(RequestRejected, match="embeds texts; it does not chat"):
        await provider.complete(ChatRequest("local-wordllama", [{"role": "user", "content": "hi"}]), 1)
    with pytest.raises(RequestRejected, match="no model 'nope'"):
        await provider.embed(EmbeddingRequest("nope", ("hi",)), timeout_s=1)
    with pytest.raises(RequestRejected, match="makes 256 dimensions, not 64"):
        await provider.embed(EmbeddingRequest("local-wordllama", ("hi",), dimensions=64), timeout_s=1)
    same = await provider.embed(EmbeddingRequest("local-wordllama", ("hi",), dimensions=256), timeout_s=1)
    assert same.vectors.shape == (1, 256)


async def test_an_embedder_that_raises_is_a_local_model_failure() -> None:
    class Broken:
        dimensions = 4

        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            raise ValueError("bad input")

    provider = LocalProvider(models={"broken": Broken()})
    with pytest.raises(LocalModelFailed, match="raised ValueError: bad input"):
        await provider.embed(EmbeddingRequest("broken", ("hi",)), timeout_s=1)


def test_the_offline_embedder_loads_once_whichever_threads_ask() -> None:
    from concurrent.futures import ThreadPoolExecutor
    from unittest import mock

    from agents.offline.embedder import LazyEmbedder, WordLlamaEmbedder

    lazy = LazyEmbedder()
    assert isinstance(lazy, LocalEmbedder) and lazy.dimensions == 256
    real = WordLlamaEmbedder.load()

    def slow_load() -> WordLlamaEmbedder:
        time.sleep(0.05)  # long enough for every thread to arrive while the first loads
        return real

    with (
        mock.patch.object(WordLlamaEmbedder, "load", side_effect=slow_load) as load,
        ThreadPoolExecutor(8) as pool,
    ):
        rows = list(pool.map(lambda i: lazy.embed([f"text {i}"]), range(32)))
    assert load.call_count == 1 and all(r.shape == (1, 256) for r in rows)
