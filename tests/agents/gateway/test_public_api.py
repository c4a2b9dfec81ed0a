import agents.gateway


def test_gateway_public_names_are_a_decision() -> None:
    assert sorted(agents.gateway.__all__) == [
        "AnthropicStream",
        "Backoff",
        "CircuitBreaker",
        "ContentRefused",
        "ContextTooLong",
        "OpenAIStream",
        "Overloaded",
        "Price",
        "PriceTable",
        "ProviderError",
        "QuotaExhausted",
        "RateLimited",
        "RateLimiter",
        "RequestRejected",
        "ServerError",
        "SseDecoder",
        "StreamBroken",
        "Unreachable",
        "Usage",
        "classify_response",
    ]
