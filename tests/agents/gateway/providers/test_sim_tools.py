"""The simulator's tool rules, read from the bodies podium's own wire translation sends."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from agents.gateway.providers.protocol import ChatRequest, ToolSpec
from agents.gateway.providers.sim_tools import Ask, Plan, SimTool, plan, read_anthropic, read_openai
from agents.gateway.providers.wire import anthropic_body, openai_body

LOOKUP = ToolSpec(
    "lookup_invoices",
    "Find the invoices of an account",
    {
        "type": "object",
        "properties": {
            "account_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "paid", "void"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        },
        "required": ["account_id"],
    },
)
EMAIL = ToolSpec(
    "send_email",
    "Write to the customer",
    {
        "type": "object",
        "properties": {"to": {"type": "string", "format": "email"}, "body": {"type": "string"}},
        "required": ["to", "body"],
    },
)
SEARCH = ToolSpec(
    "search_kb",
    "Search the help articles",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
TOOLS = (LOOKUP, EMAIL, SEARCH)


def ask(text: str, **fields: Any) -> Ask:
    """What the simulator reads from the OpenAI body podium sends for this request."""
    request = ChatRequest("m", [{"role": "user", "content": text}], **({"tools": TOOLS} | fields))
    return read_openai(openai_body(request, stream=False))


def calls(planned: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, json.loads(c.arguments)) for c in planned.calls]


def test_every_tool_that_overlaps_the_question_is_called_in_parallel() -> None:
    text = "Show the paid invoices of A-1001 and email bob@example.com about it"
    planned = plan(ask(text))
    assert calls(planned) == [
        ("lookup_invoices", {"account_id": "A-1001", "status": "paid"}),
        ("send_email", {"to": "bob@example.com", "body": text}),  # body: free text, the message itself
    ]
    assert [c.number for c in planned.calls] == [1, 2]


def test_auto_without_overlap_answers_in_text_required_calls_the_best_a_name_forces_one() -> None:
    assert plan(ask("What's the weather like?")) == Plan()  # the usual filler text
    assert plan(ask("Show my invoices", tool_choice="none")) == Plan()
    # "articles" is a word of search_kb's description only: 1 point, below the bar of 2...
    assert plan(ask("Any articles?")) == Plan()
    # ...but the best when a call is required.
    assert [c.name for c in plan(ask("Any articles?", tool_choice="required")).calls] == ["search_kb"]
    forced = calls(plan(ask("Show the invoices of A-7", tool_choice="send_email")))
    # No email in the prompt: the user message, not the identifier A-7.
    assert forced == [("send_email", {"to": "Show the invoices of A-7", "body": "Show the invoices of A-7"})]


def test_arguments_follow_the_schema_and_what_the_prompt_states() -> None:
    planned = plan(ask('Invoices of ACC-9 and A-1001, status=void, limit: 500 please, search "late fees"'))
    assert calls(planned) == [
        # limit is stated but above its maximum: kept within the schema.
        ("lookup_invoices", {"account_id": "ACC-9", "status": "void", "limit": 50}),
        ("search_kb", {"query": "late fees"}),
    ]
    # A forced tool gets every property: the number standing alone, not the 1001 of A-1001.
    forced = calls(plan(ask("3 open invoices for A-1001", tool_choice="lookup_invoices")))
    assert forced == [("lookup_invoices", {"account_id": "A-1001", "status": "open", "limit": 3})]


def test_each_identifier_field_takes_the_next_identifier() -> None:
    tool = SimTool(
        "transfer",
        "Move money between accounts",
        {
            "type": "object",
            "properties": {"source": {"type": "string"}, "target": {"type": "string"}},
            "required": ["source", "target"],
        },
    )
    planned = plan(Ask((tool,), "auto", "transfer from A-1 to B-2"))
    assert calls(planned) == [("transfer", {"source": "A-1", "target": "B-2"})]
    # Across parallel calls too; with one identifier only, every call gets it.
    refund = ToolSpec(
        "refund_invoice",
        "Give money back",
        {"type": "object", "properties": {"invoice_id": {"type": "string"}}, "required": ["invoice_id"]},
    )
    both = plan(ask("Look up the invoices of A-1001 and refund INV-7", tools=(LOOKUP, refund)))
    assert calls(both) == [
        ("lookup_invoices", {"account_id": "A-1001"}),
        ("refund_invoice", {"invoice_id": "INV-7"}),
    ]
    one = plan(ask("Look up the invoices of A-1001 and refund them", tools=(LOOKUP, refund)))
    assert calls(one) == [
        ("lookup_invoices", {"account_id": "A-1001"}),
        ("refund_invoice", {"invoice_id": "A-1001"}),
    ]


def test_after_tool_results_the_answer_names_them_and_ids_continue() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Show the invoices of A-1001"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_sim_1", "name": "lookup_invoices", "arguments": "{}"}],
        },
        {"role": "tool", "tool_call_id": "call_sim_1", "name": "lookup_invoices", "content": "INV-1: 30 EUR"},
    ]
    request = ChatRequest("m", messages, tools=TOOLS)
    for read in (read_openai(openai_body(request, False)), read_anthropic(anthropic_body(request, False))):
        assert read.results[0][:2] == ("lookup_invoices", "INV-1: 30 EUR") and read.calls_before == 1
        assert plan(read) == Plan(text="[sim] lookup_invoices returned: INV-1: 30 EUR")
    failed = [*messages[:-1], {**messages[-1], "is_error": True}]
    anthropic = read_anthropic(anthropic_body(ChatRequest("m", failed, tools=TOOLS), False))
    assert plan(anthropic).text == "[sim] lookup_invoices failed: INV-1: 30 EUR"
    # The user speaks again: the next calls are numbered after the one already made.
    again = ChatRequest("m", [*messages, {"role": "user", "content": "and email x@y.io"}], tools=TOOLS)
    assert [c.number for c in plan(read_anthropic(anthropic_body(again, False))).calls] == [2]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical", "other"]},
        "urgent": {"type": "boolean"},
        "summary": {"type": "string", "maxLength": 20},
        "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "ticket": {"$ref": "#/$defs/ticket"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
    },
    "required": ["category", "urgent", "summary", "score", "ticket", "tags", "note"],
    "additionalProperties": False,
    "$defs": {
        "ticket": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "priority": {"type": "integer", "minimum": 1}},
            "required": ["id", "priority"],
            "additionalProperties": False,
        }
    },
}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_structured_reply_matches_its_schema_in_both_protocols(kind: str) -> None:
    request = ChatRequest(
        "m", [{"role": "user", "content": "A technical fault on T-42"}], response_schema=SCHEMA
    )
    read = (
        read_openai(openai_body(request, False))
        if kind == "openai"
        else read_anthropic(anthropic_body(request, False))
    )
    planned = plan(read)
    value = json.loads(planned.text or "") if kind == "openai" else json.loads(planned.calls[0].arguments)
    jsonschema.validate(value, SCHEMA)
    assert value["category"] == "technical" and value["ticket"]["id"] == "T-42"
    assert planned.json == (kind == "openai") and plan(read) == planned  # deterministic


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_bad_output_does_not_match(kind: str) -> None:
    request = ChatRequest(
        "m", [{"role": "user", "content": "A technical fault on T-42"}], response_schema=SCHEMA
    )
    read = (
        read_openai(openai_body(request, False))
        if kind == "openai"
        else read_anthropic(anthropic_body(request, False))
    )
    bad = plan(read, bad_output=True)
    value = json.loads(bad.text or "") if kind == "openai" else json.loads(bad.calls[0].arguments)
    with pytest.raises(jsonschema.ValidationError, match="'category' is a required property"):
        jsonschema.validate(value, SCHEMA)
    arguments = json.loads(plan(ask("Invoices of A-1"), bad_output=True).calls[0].arguments)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(arguments, LOOKUP.parameters)
    loose = {"type": "object", "properties": {"n": {"type": "integer"}}}
    broken = json.loads(plan(Ask(schema=loose, user_text="2"), bad_output=True).text or "")
    with pytest.raises(jsonschema.ValidationError, match="not of type 'integer'"):
        jsonschema.validate(broken, loose)
