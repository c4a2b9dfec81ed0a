"""The offline models that answer a grounded prompt: extractive answers that cite, and replies."""

from agents.offline.grounded import Source, compose_extractive

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
