"""The local models behind the provider interface: grounded extractive answers and replies."""

import pytest

from agents.gateway.errors import RequestRejected
from agents.local import LocalProvider, Source, compose_extractive, grounded_prompt
from agents.providers import ChatRequest

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


def test_the_answer_cites_the_sentences_that_match_the_question() -> None:
    answer = compose_extractive("How do I reset my password?", [s.text for s in SOURCES])
    assert answer.startswith('About "How do I reset my password?":')
    assert "Click Forgot password on the sign-in page. [1]" in answer and "[2]" not in answer


def test_without_a_matching_source_the_answer_hands_over_and_invents_nothing() -> None:
    answer = compose_extractive("Do you support Kubernetes operators?", [s.text for s in SOURCES])
    assert "handing your request to a support agent" in answer and "[" not in answer.split(":", 1)[1]


async def test_the_provider_reads_the_same_prompt_a_hosted_model_gets() -> None:
    provider = LocalProvider()
    messages = grounded_prompt("Where do I add our VAT number?", "billing", SOURCES)
    done = await provider.complete(ChatRequest("local-extractive", messages), timeout_s=1)
    assert "VAT number under Settings > Billing. [2]" in done.text
    assert done.provider == "local" and done.finish_reason == "stop"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    pieces = [p async for p in provider.stream(ChatRequest("local-extractive", messages), timeout_s=1)]
    assert "".join(p.text for p in pieces[:-1]) == pieces[-1].final.text == done.text  # type: ignore[union-attr]


async def test_the_reply_model_names_the_intent_and_unknown_models_are_refused() -> None:
    provider = LocalProvider()
    messages = grounded_prompt("Please cancel our plan", "cancellation", [])
    reply = await provider.complete(ChatRequest("local-reply", messages), timeout_s=1)
    assert "billing team" in reply.text
    with pytest.raises(RequestRejected, match="no model 'gpt-x'"):
        await provider.complete(ChatRequest("gpt-x", messages), timeout_s=1)
