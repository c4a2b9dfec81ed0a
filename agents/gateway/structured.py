"""Structured output: a reply that is a JSON object matching a JSON Schema, checked on arrival.

:func:`complete_structured`, in order:

1. check the request before any call: it has a ``response_schema`` that is a valid JSON Schema,
   and no tools (their calls are an agent loop's to run: ask for structure on the turn that
   answers); else :class:`RequestRejected`;
2. call through the gateway, retries, fallbacks, breakers and cost cap as for any call (the
   wire sends the schema as OpenAI's ``response_format`` or as Anthropic's forced ``reply``
   tool; either way the reply is the completion's text);
3. parse the reply and validate it with ``jsonschema``; valid: done;
4. invalid (not JSON, not an object, or not matching): ONE repair round, the conversation plus
   the bad reply as the assistant's turn plus a user message naming what was wrong, under the
   same deadline and the cost cap less what round one spent;
5. still invalid: :class:`StructuredOutputInvalid`, not retryable, with both rounds' results.

Every call's result is kept, so the caller adds up what was spent: :attr:`Structured.cost_usd`
on success, the error's ``attempts`` on failure, including a gateway failure in the repair round
(its ``attempts`` then include round one's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from jsonschema.protocols import Validator

from agents.gateway.errors import BudgetSpent, GatewayError, RequestRejected, StructuredOutputInvalid
from agents.gateway.gateway import GatewayResult, ModelGateway
from agents.gateway.policy import CallPolicy, CostCap
from agents.gateway.providers.protocol import ChatRequest

__all__ = ["Structured", "complete_structured"]


@dataclass(frozen=True)
class Structured:
    value: dict[str, Any]
    results: tuple[GatewayResult, ...]  # every call made: one, or two with a repair round
    repaired: bool = False

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)


def _validator(schema: dict[str, Any]) -> Validator:
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        raise RequestRejected(f"response_schema is not a valid JSON Schema: {exc.message}") from exc
    return cls(schema)


def _check(text: str, validator: Validator) -> tuple[dict[str, Any] | None, str]:
    """(the value, "") for a reply that matches, else (None, what is wrong with it)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"it is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(value, dict):
        return None, f"it is a JSON {type(value).__name__}, not an object"
    error = schema_errors.best_match(validator.iter_errors(value))
    if error is not None:
        return None, f"{error.message} (at {error.json_path})"
    return value, ""


def _repair_messages(request: ChatRequest, reply: str, problem: str) -> list[dict[str, Any]]:
    """The conversation for the repair round."""
    return [
        *request.messages,
        # An empty turn is refused by Anthropic: the model is told it said nothing instead.
        {"role": "assistant", "content": reply or "(an empty reply)"},
        {
            "role": "user",
            "content": f"Your reply did not match the required JSON Schema: {problem}. "
            "Reply again with only the corrected JSON object.",
        },
    ]


async def complete_structured(
    gateway: ModelGateway,
    request: ChatRequest,
    policy: CallPolicy,
    deadline: float | None = None,
    cost_cap: CostCap | None = None,
) -> Structured:
    """The request's reply as a dict that matches ``request.response_schema`` (module docstring)."""
    if request.response_schema is None:
        raise RequestRejected("complete_structured needs a request with a response_schema")
    if request.tools:
        raise RequestRejected("complete_structured takes no tools: their calls are the agent loop's to run")
    validator = _validator(request.response_schema)
    first = await gateway.complete(request, policy, deadline, cost_cap)
    value, problem = _check(first.completion.text, validator)
    if value is not None:
        return Structured(value, (first,))
    repair = replace(request, messages=_repair_messages(request, first.completion.text, problem))
    left = None if cost_cap is None else replace(cost_cap, spent_usd=cost_cap.spent_usd + first.cost_usd)
    try:
        second = await gateway.complete(repair, policy, deadline, left)
    except (GatewayError, BudgetSpent) as exc:
        # The caller adds up the attempts of the error it gets: round one was paid for too.
        exc.attempts = first.attempts + exc.attempts
        raise
    value, problem = _check(second.completion.text, validator)
    if value is None:
        raise StructuredOutputInvalid(problem, (first, second))
    return Structured(value, (first, second), repaired=True)
