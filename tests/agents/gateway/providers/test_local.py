"""The local provider serves the local models it is given, behind the provider interface."""

import pytest

from agents.gateway.errors import RequestRejected
from agents.gateway.providers.local import LocalProvider
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
