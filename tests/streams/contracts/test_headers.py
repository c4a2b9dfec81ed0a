from streams.contracts.headers import (
    MAX_HEADER_VALUE_BYTES,
    RequestHeaders,
    ingress_headers,
    now_ms,
    parse_headers,
)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_round_trip() -> None:
    headers = RequestHeaders(
        request_id="r-1",
        traceparent=TP,
        deadline_ms=123,
        attempt=2,
        round=1,
        path=("classify", "retrieve"),
        passthrough=(("x-tenant", b"acme"),),
    )
    parsed = parse_headers(headers.to_kafka())
    assert parsed == headers
    assert parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parsed.problems == ()


def test_bad_headers_are_dropped_and_named_never_raised() -> None:
    parsed = parse_headers(
        [
            ("podium-request-id", b"\xff\xfe not utf8"),
            ("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            ("podium-attempt", b"many"),
            ("podium-deadline-ms", b"-5"),
            ("podium-path", b"ok,has space"),
            ("huge", b"x" * (MAX_HEADER_VALUE_BYTES + 1)),
            ("empty", None),  # type: ignore[list-item]
        ]
    )
    assert parsed.request_id is None and parsed.traceparent is None
    assert parsed.attempt == 0 and parsed.deadline_ms is None and parsed.path == ()
    assert parsed.passthrough == ()
    assert len(parsed.problems) == 7


def test_repeated_header_keeps_the_first_and_never_writes_two_traceparents() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    parsed = parse_headers([("traceparent", TP.encode()), ("traceparent", other.encode())])
    assert parsed.traceparent == TP
    assert [k for k, _ in parsed.to_kafka()].count("traceparent") == 1


def test_next_hop_keeps_request_and_deadline_resets_counters() -> None:
    headers = RequestHeaders(request_id="r", deadline_ms=99, attempt=3, round=2, not_before_ms=5, path=("a",))
    nxt = headers.for_next_hop("b", TP, None)
    assert (nxt.request_id, nxt.deadline_ms, nxt.attempt, nxt.round, nxt.not_before_ms) == (
        "r",
        99,
        0,
        0,
        None,
    )
    assert nxt.path == ("a", "b") and nxt.traceparent == TP


def test_ingress_sets_a_deadline_from_the_budget() -> None:
    headers = ingress_headers(budget_s=2.0)
    assert headers.request_id and len(headers.request_id) == 32
    remaining = headers.remaining_s(now_ms())
    assert remaining is not None and 1.5 < remaining <= 2.0
    assert ingress_headers().remaining_s() is None


def test_cost_travels_and_adds_up_and_nonsense_is_reset() -> None:
    headers = RequestHeaders(request_id="r", cost_usd=0.0125)
    assert parse_headers(headers.to_kafka()).cost_usd == 0.0125
    assert headers.for_next_hop("s", None, None, spent_usd=0.0075).cost_usd == 0.02
    for bad in (b"-1", b"nan", b"inf", b"lots"):
        parsed = parse_headers([("podium-cost-usd", bad)])
        assert parsed.cost_usd == 0.0 and parsed.problems


def test_tenant_travels_to_the_next_hop_and_a_malformed_one_is_dropped() -> None:
    sent = ingress_headers(tenant="acme").to_kafka()
    assert dict(sent)["podium-tenant"] == b"acme"
    parsed = parse_headers(sent)
    assert parsed.tenant == "acme"
    assert parsed.for_next_hop("classify", None, None).tenant == "acme"
    bad = parse_headers([("podium-tenant", b"a b\n")])
    assert bad.tenant is None and any("podium-tenant" in p for p in bad.problems)
    assert ingress_headers(tenant="no spaces please").tenant is None


def test_evolve_is_replace_without_its_cost_and_refuses_what_is_no_field() -> None:
    import dataclasses

    import pytest

    headers = RequestHeaders(request_id="r", attempt=1, path=("a",), tenant="t", problems=("x",))
    evolved = headers.evolve(attempt=2, round=1)
    assert evolved == dataclasses.replace(headers, attempt=2, round=1)
    assert evolved.problems == ("x",) and headers.attempt == 1  # a copy: the original stays
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolved.attempt = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="attemptt"):
        headers.evolve(attemptt=2)
