"""Typed Python functions as tools: the schema the model sees, the errors it hears, how they run."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from datetime import date
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from agents.gateway.providers.protocol import ToolSpec
from agents.loop import Tool, ToolError, ToolOutcome, tool
from agents.loop.tools import ToolDefinitionError
from streams.errors import PodiumError


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Plan(enum.Enum):
    free = "free"
    pro = "pro"


@tool
def find_customer(
    account: Annotated[str, Field(description="The account id, as A-123")],
    limit: int = 10,
    status: Literal["open", "closed"] = "open",
    plan: Plan = Plan.free,
    address: Address | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Find a customer by account.

    This second paragraph is for people reading the code, not for the model."""
    return {
        "account": account,
        "limit": limit,
        "status": status,
        "plan": plan,
        "address": address,
        "tags": tags,
    }


async def run(t: Tool, arguments: str, key: str = "call-1") -> ToolOutcome:
    return await t.run(arguments, idempotency_key=key)


def test_the_schema_comes_from_the_annotations() -> None:
    assert find_customer.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "account": {"type": "string", "description": "The account id, as A-123"},
            "limit": {"type": "integer", "default": 10},
            "status": {"type": "string", "enum": ["open", "closed"], "default": "open"},
            "plan": {"$ref": "#/$defs/Plan", "default": "free"},
            "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["account"],
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "zip_code": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                },
                "required": ["city"],
            },
            "Plan": {"type": "string", "enum": ["free", "pro"]},
        },
    }


def test_the_description_is_the_docstrings_first_paragraph_and_the_spec_carries_it() -> None:
    assert find_customer.name == "find_customer"
    assert find_customer.description == "Find a customer by account."
    assert find_customer.spec() == ToolSpec(
        "find_customer", "Find a customer by account.", find_customer.parameters
    )


def test_name_description_and_flags_can_be_given() -> None:
    @tool(
        name="refund", description="Refund an invoice.", side_effect=True, requires_approval=True, timeout_s=3
    )
    async def issue_refund(invoice: str) -> str:
        return invoice

    assert (issue_refund.name, issue_refund.description) == ("refund", "Refund an invoice.")
    assert (issue_refund.side_effect, issue_refund.requires_approval, issue_refund.timeout_s) == (
        True,
        True,
        3,
    )
    assert (find_customer.side_effect, find_customer.requires_approval, find_customer.timeout_s) == (
        False,
        False,
        10.0,
    )


def test_a_field_named_title_keeps_its_schema_and_names_basemodel_uses_are_fine() -> None:
    @tool
    def save(title: Annotated[str, Field(description="shown")], schema: str, json: int = 1) -> str:
        """Save."""
        return f"{title} {schema} {json}"

    assert save.parameters["properties"]["title"] == {"type": "string", "description": "shown"}
    assert save.parameters["required"] == ["title", "schema"]


async def test_valid_arguments_reach_the_function_as_its_types() -> None:
    outcome = await run(find_customer, '{"account": "A-1", "plan": "pro", "address": {"city": "Lyon"}}')
    assert outcome == ToolOutcome(
        '{"account":"A-1","limit":10,"status":"open","plan":"pro",'
        '"address":{"city":"Lyon","zip_code":null},"tags":null}'
    )


async def test_arguments_that_do_not_fit_name_each_field_and_what_was_expected() -> None:
    outcome = await run(
        find_customer, '{"limit": "ten", "status": "lost", "address": {"zip_code": 7}, "x": 1}'
    )
    assert outcome.is_error and outcome.error_type == "invalid_arguments"
    assert outcome.content == (
        "invalid arguments: account: Field required; "
        'limit: Input should be a valid integer, unable to parse string as an integer (got "ten"); '
        "status: Input should be 'open' or 'closed' (got \"lost\"); "
        "address.city: Field required; "
        "address.zip_code: Input should be a valid string (got 7); "
        "x: Extra inputs are not permitted"
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"account": ', "invalid arguments: arguments: Invalid JSON: EOF while parsing a value"),
        ('["A-1"]', "invalid arguments: arguments: Input should be an object"),
        ("", "invalid arguments: account: Field required"),
    ],
)
async def test_broken_json_or_not_an_object_is_told_as_such(arguments: str, expected: str) -> None:
    outcome = await run(find_customer, arguments)
    assert outcome.error_type == "invalid_arguments"
    assert outcome.content.startswith(expected)


async def test_a_tool_without_parameters_takes_empty_arguments() -> None:
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert ping.parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    assert await run(ping, "") == ToolOutcome("pong")
    assert await run(ping, "{}") == ToolOutcome("pong")


async def test_the_idempotency_key_is_the_call_id_and_the_model_never_sees_it() -> None:
    @tool(side_effect=True)
    async def charge(amount: int, idempotency_key: str) -> dict[str, Any]:
        """Charge the card."""
        return {"amount": amount, "key": idempotency_key}

    assert list(charge.parameters["properties"]) == ["amount"]
    assert await run(charge, '{"amount": 5}', key="call-42") == ToolOutcome('{"amount":5,"key":"call-42"}')
    # A model that tries to supply it is told the tool takes no such argument.
    outcome = await run(charge, '{"amount": 5, "idempotency_key": "mine"}')
    assert outcome.content == "invalid arguments: idempotency_key: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("value", "content"),
    [
        ("plain text, not JSON", "plain text, not JSON"),
        ({"n": 1, "when": date(2026, 1, 2)}, '{"n":1,"when":"2026-01-02"}'),
        ([1, "two"], '[1,"two"]'),
        (Address(city="Oslo"), '{"city":"Oslo","zip_code":null}'),
        (Plan.pro, '"pro"'),
        (None, "null"),
        (3.5, "3.5"),
    ],
)
async def test_return_values_reach_the_model_as_json(value: object, content: str) -> None:
    @tool
    def give() -> object:
        """Give the value."""
        return value

    assert await run(give, "{}") == ToolOutcome(content)


async def test_a_sync_tool_runs_in_a_worker_thread_and_the_loop_goes_on() -> None:
    loop_thread = threading.get_ident()

    @tool
    def slow() -> int:
        """Block for a while."""
        time.sleep(0.3)
        return threading.get_ident()

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        outcome = await run(slow, "{}")
    finally:
        ticker.cancel()
    assert int(outcome.content) != loop_thread
    assert ticks >= 5  # the event loop kept running while the function blocked


async def test_an_async_tool_that_hangs_times_out() -> None:
    @tool(timeout_s=0.1)
    async def hang() -> str:
        """Never answer."""
        await asyncio.Event().wait()
        return "never"

    started = time.monotonic()
    assert await run(hang, "{}") == ToolOutcome(
        "hang did not finish within 0.1 s", is_error=True, error_type="timeout"
    )
    assert time.monotonic() - started < 1


async def test_a_sync_tool_that_hangs_times_out_while_its_thread_runs_on() -> None:
    release = threading.Event()

    @tool(timeout_s=0.1)
    def stuck() -> str:
        """Block until released."""
        release.wait(5)
        return "done"

    try:
        outcome = await run(stuck, "{}")
    finally:
        release.set()  # the thread cannot be stopped: let it finish
    assert outcome.error_type == "timeout"


async def test_a_tools_own_timeout_error_is_a_failure_not_a_timeout() -> None:
    @tool
    async def upstream() -> str:
        """Call a service that times out."""
        raise TimeoutError("the billing API did not answer")

    assert await run(upstream, "{}") == ToolOutcome(
        "TimeoutError: the billing API did not answer", is_error=True, error_type="failed"
    )


async def test_exceptions_are_failures_the_model_reads() -> None:
    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    @tool
    async def refund(invoice: str) -> str:
        """Refund an invoice."""
        raise ToolError(f"invoice {invoice} was already refunded")

    assert await run(divide, '{"a": 1, "b": 0}') == ToolOutcome(
        "ZeroDivisionError: division by zero", is_error=True, error_type="failed"
    )
    assert await run(refund, '{"invoice": "I-9"}') == ToolOutcome(
        "invoice I-9 was already refunded", is_error=True, error_type="failed"
    )
    assert issubclass(ToolError, PodiumError)


async def test_cancellation_passes_through() -> None:
    entered = asyncio.Event()

    @tool
    async def wait() -> str:
        """Wait."""
        entered.set()
        await asyncio.sleep(10)
        return "late"

    task = asyncio.create_task(run(wait, "{}"))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_function_the_model_cannot_be_told_about_is_refused_at_definition() -> None:
    def untyped(account):  # type: ignore[no-untyped-def]
        """Untyped."""

    def no_doc(account: str) -> None:
        pass

    def star(*accounts: str) -> None:
        """Star."""

    def positional(account: str, /) -> None:
        """Positional."""

    for fn, words in [
        (untyped, "annotate parameter 'account'"),
        (no_doc, "give it a docstring or description="),
        (star, "parameter 'accounts' must be passable by name"),
        (positional, "parameter 'account' must be passable by name"),
    ]:
        with pytest.raises(ToolDefinitionError, match=words):
            tool(fn)
    with pytest.raises(ToolDefinitionError, match="use 1 to 64 letters"):
        tool(name="look up")(no_doc)
    assert issubclass(ToolDefinitionError, PodiumError)


def test_tools_compare_by_identity_and_can_key_a_dict() -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    first, second = tool(ping), tool(ping)
    assert first != second  # alike on paper, but each is its own implementation
    assert {first: 1, second: 2}[second] == 2
