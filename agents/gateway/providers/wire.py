"""Podium's neutral chat request to the bodies of the two wire protocols, and their replies back.

Pure functions, no I/O: the providers over httpx (:mod:`agents.gateway.providers.http`) call
them. Both protocols are translated from the same neutral shape (:mod:`.protocol`), so a
fallback from an OpenAI route to an Anthropic route carries the tools and the conversation with
its tool calls and results across.

=================  ===========================================  ===========================================
neutral            OpenAI chat completions                      Anthropic Messages
=================  ===========================================  ===========================================
ToolSpec           ``{type: function, function: {name,          ``{name, description, input_schema}``
                   description, parameters}}``
tool_choice        None/"auto", "required", "none", a name ->   None/"auto" -> auto, "required" -> any,
                   ``"auto"``, ``"required"``, ``"none"``,      a name -> ``{type: tool, name}``, "none":
                   ``{type: function, function: {name}}``       no tools sent (see :func:`anthropic_body`)
assistant calls    ``tool_calls[{id, type: function,            ``tool_use{id, name, input}`` blocks after
                   function: {name, arguments}}]``              the text block
tool result        ``{role: tool, tool_call_id, content}``      ``tool_result{tool_use_id, content,
                                                                is_error}`` blocks, one user message
response_schema    ``response_format: {type: json_schema,       a tool named ``reply`` (its input_schema)
                   json_schema: {name: reply, schema,           the model is forced to call; its input is
                   strict: true}}``                             the reply
=================  ===========================================  ===========================================

Either way a structured reply comes back as the Completion's text: the JSON text.

Embeddings are OpenAI-compatible only (Anthropic has no embeddings API): ``POST /embeddings``
``{model, input: [...], encoding_format: "float"}`` answers ``data[{index, embedding}]`` (read in
``index`` order, whatever order they came in) and ``usage.prompt_tokens``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.gateway.errors import RequestRejected, ServerError
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ChatRequest, EmbeddingRequest, ToolCall, ToolSpec

__all__ = [
    "REPLY_TOOL",
    "Reply",
    "anthropic_body",
    "anthropic_messages",
    "anthropic_reply",
    "anthropic_tool_choice",
    "openai_body",
    "openai_embedding_body",
    "openai_embeddings",
    "openai_messages",
    "openai_reply",
    "openai_tool_choice",
]

# The name of the schema in OpenAI's response_format, and of the forced tool on Anthropic.
REPLY_TOOL = "reply"


@dataclass(frozen=True)
class Reply:
    """What a provider's answer says, in neutral terms."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None


def _text(content: Any) -> str:
    """A message's content as text (podium's is text; anything else is sent as its JSON)."""
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content)


def _forced_name(request: ChatRequest) -> str | None:
    """The tool ``tool_choice`` forces, or None; forcing a tool the request lacks is a caller's bug."""
    choice = request.tool_choice
    if choice is None or choice in ("auto", "required", "none"):
        return None
    if choice not in {t.name for t in request.tools}:
        raise RequestRejected(f"tool_choice forces '{choice}', which is not among the request's tools")
    return choice


# ---------------------------------------------------------------------------------------- OpenAI


def openai_tool_choice(request: ChatRequest) -> str | dict[str, Any]:
    if (name := _forced_name(request)) is not None:
        return {"type": "function", "function": {"name": name}}
    return request.tool_choice or "auto"


def _openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def openai_messages(messages: list[dict[str, Any]], system: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        role, text = message.get("role", "user"), _text(message.get("content"))
        if role == "tool":
            # OpenAI has no error flag on a tool result: the model can only read it in the content.
            prefix = "error: " if message.get("is_error") else ""
            out.append({"role": "tool", "tool_call_id": message["tool_call_id"], "content": prefix + text})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call.get("arguments") or "{}"},
                }
                for call in message["tool_calls"]
            ]
            out.append({"role": "assistant", "content": text or None, "tool_calls": calls})
        else:
            out.append({"role": role, "content": text})
    return out


def openai_body(request: ChatRequest, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": openai_messages(request.messages, request.system),
        "max_tokens": request.max_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:  # a tool_choice without tools is refused by the API: it goes only with them
        body["tools"] = [_openai_tool(t) for t in request.tools]
        body["tool_choice"] = openai_tool_choice(request)
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": REPLY_TOOL, "schema": request.response_schema, "strict": True},
        }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def openai_reply(choice: dict[str, Any]) -> Reply:
    """One ``choices[]`` entry of a chat completion."""
    message = choice.get("message") or {}
    calls = tuple(
        ToolCall(
            id=str(call.get("id") or ""),
            name=str((call.get("function") or {}).get("name") or ""),
            arguments=str((call.get("function") or {}).get("arguments") or "{}"),
        )
        for call in message.get("tool_calls") or ()
    )
    return Reply(str(message.get("content") or ""), calls, choice.get("finish_reason"))


# ------------------------------------------------------------------------------------- Anthropic


def anthropic_tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    """The ``tool_choice`` to send; None for "none" (see :func:`anthropic_body`)."""
    if (name := _forced_name(request)) is not None:
        return {"type": "tool", "name": name}
    if request.tool_choice == "none":
        return None
    return {"type": "any"} if request.tool_choice == "required" else {"type": "auto"}


def _input(arguments: str) -> dict[str, Any]:
    """Anthropic takes a call's input as an object. Arguments that are not one (a model wrote
    broken JSON) are kept as text rather than dropped: the tool result that follows says why they
    were refused, and the model should see what it wrote."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def _blocks(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role, text = message.get("role", "user"), _text(message.get("content"))
    if role == "tool":
        result = {
            "type": "tool_result",
            "tool_use_id": message["tool_call_id"],
            "content": text,
            "is_error": bool(message.get("is_error", False)),
        }
        return "user", [result]
    # The API refuses empty text blocks: an assistant turn of calls only has none.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if role == "assistant":
        blocks += [
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["name"],
                "input": _input(call.get("arguments") or "{}"),
            }
            for call in message.get("tool_calls") or ()
        ]
    return role, blocks


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as Messages wants it: roles alternate, so consecutive messages of one role
    (the results of parallel calls, a result followed by the user's next words) are merged into one,
    with tool results first as the API requires; a message that is one text stays a string."""
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        if message.get("role") == "system":
            continue  # sent as the system parameter by anthropic_body
        role, blocks = _blocks(message)
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, blocks))
    out = []
    for role, blocks in merged:
        if role == "user":
            blocks.sort(key=lambda b: b["type"] != "tool_result")  # stable: order kept within kinds
        content: str | list[dict[str, Any]] = blocks
        if not blocks:
            content = ""
        elif len(blocks) == 1 and blocks[0]["type"] == "text":
            content = blocks[0]["text"]
        out.append({"role": role, "content": content})
    return out


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def anthropic_body(request: ChatRequest, stream: bool) -> dict[str, Any]:
    """With ``response_schema`` the reply is a call of the ``reply`` tool: forced when the request
    has no tools of its own (or forbids them), else the model must call *some* tool (``any``),
    its own or ``reply``, the way OpenAI lets a model call tools or answer in the schema.

    ``tool_choice`` "none" sends no tools at all, unless the conversation already holds tool calls
    or results: the API refuses those without the tools defined, so then the tools go with an
    explicit ``{type: none}``."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": anthropic_messages(request.messages),
        "max_tokens": request.max_tokens,
    }
    inline = [_text(m.get("content")) for m in request.messages if m.get("role") == "system"]
    system = "\n\n".join([request.system or "", *inline]).strip()
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
    ]
    choice = anthropic_tool_choice(request) if tools else None
    if tools and choice is None:  # "none"
        if _has_tool_blocks(request.messages):
            choice = {"type": "none"}
        else:
            tools = []
    if request.response_schema is not None:
        if any(t.name == REPLY_TOOL for t in request.tools):
            raise RequestRejected(f"a tool named '{REPLY_TOOL}' clashes with the structured reply's tool")
        if not tools or choice == {"type": "none"}:
            choice = {"type": "tool", "name": REPLY_TOOL}
        elif choice == {"type": "auto"}:
            choice = {"type": "any"}
        tools.append(
            {
                "name": REPLY_TOOL,
                "description": "Give your answer: call this with the reply as its input.",
                "input_schema": request.response_schema,
            }
        )
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


def anthropic_reply(data: dict[str, Any], structured: bool = False) -> Reply:
    """A Messages response. ``structured``: the request had a ``response_schema``, so a ``reply``
    call is the answer (its input, as JSON text) and not a tool call; the turn then ends as a
    plain answer does (``end_turn``), since no call is left for the caller to make."""
    text, calls, reply = [], [], None
    for block in data.get("content") or ():
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            if structured and block.get("name") == REPLY_TOOL:
                reply = arguments
            else:
                calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments))
    finish = data.get("stop_reason")
    if reply is not None and not calls and finish == "tool_use":
        finish = "end_turn"
    return Reply("".join(text) if reply is None else reply, tuple(calls), finish)


def openai_embedding_body(request: EmbeddingRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "input": list(request.inputs), "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def openai_embeddings(data: Any, inputs: int) -> tuple[npt.NDArray[np.float32], Usage]:
    """The vectors (one row per input, in ``index`` order) and the usage of an embeddings answer.
    An answer that does not hold one vector of one length per input is the provider's fault."""
    rows = data.get("data") if isinstance(data, dict) else None
    try:
        ordered = sorted(rows or (), key=lambda row: int(row["index"]))
        vectors = np.asarray([row["embedding"] for row in ordered], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerError(f"an embeddings answer that cannot be read: {type(exc).__name__}: {exc}") from exc
    indexes = [int(row["index"]) for row in ordered]
    if indexes != list(range(inputs)) or vectors.ndim != 2:
        raise ServerError(f"an embeddings answer with rows {indexes[:8]} for {inputs} inputs")
    usage = data.get("usage") or {}
    return vectors, Usage(int(usage.get("prompt_tokens") or 0), 0)
