"""The local provider serves the local models it is given, behind the provider interface."""

import pytest

from agents.gateway.backoff import Backoff
from agents.gateway.errors import LocalModelFailed, Overloaded, RequestRejected
from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.local import LocalModel, LocalProvider, LocalTurn, ToolModel
from agents.gateway.providers.protocol import ChatRequest
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
