"""What the provider simulator answers to a request with tools or a response schema. NOT a model.

Plain rules read from the request alone, with no random draw (the seeded fault draws of
:mod:`.simulator` stay as they were), so the same request always gets the same answer:

1. No tools, or ``tool_choice`` "none": no calls.
2. A tool forced by name (OpenAI ``{type: function}``, Anthropic ``{type: tool}``, which is how
   a structured reply is asked of Anthropic) is always called.
3. Otherwise, when the conversation ends with tool results (no words of the user's after them):
   no calls, and a text answer naming each tool's result (``[sim] lookup_invoices returned:
   ...``), or the structured reply of rule 6.
4. Otherwise each tool scores by word overlap with the last user message: 2 for each word of its
   name (split on ``_`` and case), 1 for each other word of its description (stop words dropped,
   a plural ``s`` ignored). Every tool scoring at least 2 is called (parallel calls); with
   "required" and none that high, the best one (the first on a tie).
5. Arguments, for each property of the tool's JSON Schema, read from the user's messages (the
   latest first, so a correction or follow-up is read before what it refers to): ``<prop>:
   <value>`` or ``<prop>=<value>``; else an enum value they mention (else the first);
   integer/number: the first number standing alone (not the 1001 of ``A-1001``), else 0, kept
   within minimum/maximum; boolean: false; a free-text string (``query``, ``question``,
   ``message``, ...): a quoted string, else the last user message itself; an email field: an
   email, else the last user message; another string: an identifier-like token (``A-1001``,
   ``INV_22``; each property, across the calls of one reply, takes the next unused one), else
   a quoted string, else the last user message; an object: its properties; an array:
   ``minItems`` items (at least one). A tool chosen by score gets its required properties and
   the ones the user states (``prop: value``, a mentioned enum value); a forced tool and a
   structured reply get every property (OpenAI's strict mode wants them all).
6. A structured reply (OpenAI ``response_format``): that object for the schema, as JSON text.
7. The ``bad_output`` fault breaks the object: its first required property is left out, or (none
   required) its first property gets a value of the wrong type.

Patterns, formats other than email, and ``allOf`` are not honoured: schemas that need them may
get a value that does not match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Ask", "Plan", "PlannedCall", "SimTool", "plan", "read_anthropic", "read_openai"]

# Word lists read better as text than as a column of literals (hence the noqa).
_STOP = frozenset(
    "a an and any are as at be by can could do does for from get give has have how i in is it its "  # noqa: SIM905
    "me my of on or our please tell that the their them there this to us was we what when where "
    "which who why will with would you your".split()
)
_FREE_TEXT = frozenset(
    "answer body comment content description details issue message note notes problem prompt q "  # noqa: SIM905
    "query question reason request search subject summary text".split()
)
_MIN_SCORE = 2  # a word of the tool's name, or two of its description
_MAX_DEPTH = 8  # a recursive schema ($ref to itself) stops here


@dataclass(frozen=True)
class SimTool:
    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Ask:
    """A request as the planner reads it, whichever protocol it came in."""

    tools: tuple[SimTool, ...] = ()
    choice: str = "auto"  # "auto", "required", "none" or the name of the forced tool
    user_text: str = ""  # the last user message's text
    earlier: tuple[str, ...] = ()  # the user's earlier messages, the latest first
    results: tuple[tuple[str, str, bool], ...] = ()  # (tool, content, is_error) ending the conversation
    calls_before: int = 0  # tool calls earlier in the conversation: new ids continue from there
    schema: dict[str, Any] | None = None  # OpenAI's response_format schema


@dataclass(frozen=True)
class PlannedCall:
    number: int  # the protocol's id is call_sim_<number> or toolu_sim_<number>
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Plan:
    """Tool calls; or ``text`` (the JSON of a structured reply when ``json``); or, with neither,
    the simulator's usual filler text."""

    calls: tuple[PlannedCall, ...] = ()
    text: str | None = None
    json: bool = False


# ------------------------------------------------------------------------------------ reading


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(b.get("text", b.get("content", ""))) for b in content if isinstance(b, dict))
    return "" if content is None else json.dumps(content)


def read_openai(body: dict[str, Any]) -> Ask:
    tools = tuple(
        SimTool(str(f.get("name", "")), str(f.get("description") or ""), f.get("parameters") or {})
        for t in body.get("tools") or ()
        if isinstance(f := t.get("function"), dict)
    )
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        choice = str((choice.get("function") or {}).get("name") or "auto")
    messages: list[dict[str, Any]] = body.get("messages") or []
    names = {
        c.get("id"): (c.get("function") or {}).get("name")
        for m in messages
        for c in m.get("tool_calls") or ()
    }
    trailing = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        trailing.append((str(names.get(m.get("tool_call_id")) or "a tool"), _text(m.get("content")), False))
    format_ = body.get("response_format") or {}
    schema = (
        (format_.get("json_schema") or {}).get("schema") if format_.get("type") == "json_schema" else None
    )
    said = [_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"]
    return Ask(
        tools,
        str(choice),
        said[0] if said else "",
        tuple(said[1:]),
        tuple(reversed(trailing)),
        sum(len(m.get("tool_calls") or ()) for m in messages),
        schema,
    )


def read_anthropic(body: dict[str, Any]) -> Ask:
    tools = tuple(
        SimTool(str(t.get("name", "")), str(t.get("description") or ""), t.get("input_schema") or {})
        for t in body.get("tools") or ()
    )
    wanted = body.get("tool_choice") or {}
    kind = str(wanted.get("type") or "auto")
    choice = {"any": "required", "none": "none", "tool": str(wanted.get("name"))}.get(kind, "auto")
    messages: list[dict[str, Any]] = body.get("messages") or []
    blocks = [(m, b) for m in messages if isinstance(m.get("content"), list) for b in m["content"]]
    names = {b.get("id"): b.get("name") for _, b in blocks if b.get("type") == "tool_use"}
    last = messages[-1] if messages else {}
    ending = last.get("content") if last.get("role") == "user" else None
    ending = ending if isinstance(ending, list) else []
    # Results the user added words to are not where the conversation ends: as in OpenAI, where
    # those words are a user message of their own after the results.
    if any(b.get("type") == "text" and b.get("text") for b in ending):
        ending = []
    results = tuple(
        (str(names.get(b.get("tool_use_id")) or "a tool"), _text(b.get("content")), bool(b.get("is_error")))
        for b in ending
        if b.get("type") == "tool_result"
    )

    def said(message: dict[str, Any]) -> str:
        content = message.get("content")
        if isinstance(content, list):
            return " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
        return _text(content)

    user = [text for m in reversed(messages) if m.get("role") == "user" and (text := said(m))]
    calls_before = sum(1 for _, b in blocks if b.get("type") == "tool_use")
    return Ask(tools, choice, user[0] if user else "", tuple(user[1:]), results, calls_before)


# ----------------------------------------------------------------------------------- choosing


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", spaced.lower()) if w not in _STOP}


def _score(tool: SimTool, words: set[str]) -> int:
    name = _words(tool.name)
    return 2 * len(name & words) + len((_words(tool.description) - name) & words)


def _chosen(ask: Ask) -> list[tuple[SimTool, bool]]:
    """The tools to call, each with whether it was forced."""
    if ask.choice not in ("auto", "required", "none"):
        return [(t, True) for t in ask.tools if t.name == ask.choice][:1]
    if ask.choice == "none" or ask.results:
        return []
    words = _words(ask.user_text)
    scores = [_score(t, words) for t in ask.tools]
    picked = [t for t, s in zip(ask.tools, scores, strict=True) if s >= _MIN_SCORE]
    if not picked and ask.choice == "required" and ask.tools:
        picked = [ask.tools[scores.index(max(scores))]]
    return [(t, False) for t in picked]


def plan(ask: Ask, bad_output: bool = False) -> Plan:
    calls = []
    used: set[str] = set()  # identifiers given out: parallel calls take different ones first
    for i, (tool, forced) in enumerate(_chosen(ask)):
        value = _Values(ask, tool.schema, used).object(tool.schema, full=forced)
        calls.append(
            PlannedCall(
                ask.calls_before + i + 1,
                tool.name,
                json.dumps(_broken(value, tool.schema) if bad_output else value),
            )
        )
    if calls:
        return Plan(tuple(calls))
    if ask.schema is not None:
        value = _Values(ask, ask.schema).object(ask.schema, full=True)
        return Plan(text=json.dumps(_broken(value, ask.schema) if bad_output else value), json=True)
    if ask.results:
        said = "; ".join(
            f"{name} {'failed' if error else 'returned'}: {' '.join(content.split())[:120]}"
            for name, content, error in ask.results
        )
        return Plan(text=f"[sim] {said}")
    return Plan()


# ------------------------------------------------------------------------------------- values

_NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?![\w-])")
_IDENTIFIER = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]*[A-Za-z0-9](?![\w-])")
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|(?<!\w)\'([^\']+)\'(?!\w)')
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]*\w")
_ABSENT = object()


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if schema.get("enum"):
        first = schema["enum"][0]
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(first), "string")
    return "object" if "properties" in schema else "array" if "items" in schema else "string"


class _Values:
    """Values for a schema's properties, from one prompt."""

    def __init__(self, ask: Ask, root: dict[str, Any], used: set[str] | None = None) -> None:
        # What the user said, the latest first (a correction or a follow-up before the question
        # it refers to); the last message alone is what a free-text field echoes.
        self.prompt = "\n".join((ask.user_text, *ask.earlier))
        self.message = ask.user_text
        self.root = root
        self.used = set() if used is None else used  # identifiers already given to a property

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                node: Any = self.root
                for part in ref[2:].split("/"):
                    node = node.get(part, {}) if isinstance(node, dict) else {}
                schema = node
                continue
            options = schema.get("anyOf") or schema.get("oneOf")
            if options:  # the first option that is not null
                schema = next((o for o in options if o.get("type") != "null"), options[0])
                continue
            break
        return schema

    def object(self, schema: dict[str, Any], full: bool, depth: int = 0) -> dict[str, Any]:
        schema = self.resolve(schema)
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            sub = self.resolve(sub)
            if full or name in required:
                out[name] = self.value(sub, name, full, depth + 1)
            elif (stated := self.stated(sub, name)) is not _ABSENT:
                out[name] = stated
        return out

    def value(self, schema: dict[str, Any], name: str, full: bool, depth: int) -> Any:
        if "const" in schema:
            return schema["const"]
        if (stated := self.stated(schema, name)) is not _ABSENT:
            return stated
        if schema.get("enum"):
            return schema["enum"][0]
        kind = _type(schema)
        if kind == "object":
            return self.object(schema, full, depth) if depth < _MAX_DEPTH else {}
        if kind == "array":
            items = self.resolve(schema.get("items") or {})
            count = max(int(schema.get("minItems", 1)), 1)
            count = min(count, int(schema.get("maxItems", count)))
            return (
                [self.value(items, name, full, depth + 1) for _ in range(count)] if depth < _MAX_DEPTH else []
            )
        if kind in ("integer", "number"):
            found = _NUMBER.search(self.prompt)
            return self.bounded(schema, kind, float(found.group()) if found else 0.0)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.string(schema, name)

    def stated(self, schema: dict[str, Any], name: str) -> Any:
        """What the prompt says outright: ``name: value``, or a mention of one of the enum values."""
        said = re.search(
            rf"(?<![\w-]){re.escape(name)}\s*[:=]\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s,;]+))", self.prompt, re.I
        )
        enum = schema.get("enum") or ()
        if said:
            text = next(g for g in said.groups() if g is not None).rstrip(".!?)")
            kind = _type(schema)
            if enum:
                return next((e for e in enum if str(e).lower() == text.lower()), _ABSENT)
            if kind in ("integer", "number") and re.fullmatch(r"-?\d+(?:\.\d+)?", text):
                return self.bounded(schema, kind, float(text))
            if kind == "boolean" and text.lower() in ("true", "false", "yes", "no"):
                return text.lower() in ("true", "yes")
            if kind == "string":
                return text
        mentions = [
            (m.start(), e)
            for e in enum
            if (m := re.search(rf"(?<![\w-]){re.escape(str(e))}(?![\w-])", self.prompt, re.I))
        ]
        return min(mentions, key=lambda m: m[0])[1] if mentions else _ABSENT

    def bounded(self, schema: dict[str, Any], kind: str, number: float) -> float | int:
        step = 1 if kind == "integer" else 0.5
        if "minimum" in schema:
            number = max(number, schema["minimum"])
        if "exclusiveMinimum" in schema and number <= schema["exclusiveMinimum"]:
            number = schema["exclusiveMinimum"] + step
        if "maximum" in schema:
            number = min(number, schema["maximum"])
        if "exclusiveMaximum" in schema and number >= schema["exclusiveMaximum"]:
            number = schema["exclusiveMaximum"] - step
        return int(number) if kind == "integer" else float(number)

    def string(self, schema: dict[str, Any], name: str) -> str:
        lowered = name.lower()
        quoted = next((next(g for g in m.groups() if g) for m in _QUOTED.finditer(self.prompt)), None)
        text: str | None = None
        if schema.get("format") == "email" or "email" in lowered:
            text = found.group() if (found := _EMAIL.search(self.prompt)) else self.message
        if text is None and (lowered in _FREE_TEXT or lowered.rsplit("_", 1)[-1] in _FREE_TEXT):
            text = quoted or self.message
        if text is None:
            tokens = _IDENTIFIER.findall(self.prompt)
            fresh = [t for t in tokens if t not in self.used]
            text = (fresh or tokens or [quoted or self.message])[0]
            self.used.add(text)
        text = text[: schema["maxLength"]] if "maxLength" in schema else text
        return text.ljust(int(schema.get("minLength", 0)), "x")


def _broken(value: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A reply that does not match ``schema`` (the ``bad_output`` fault)."""
    required = list(schema.get("required") or ())
    if required and required[0] in value:
        return {k: v for k, v in value.items() if k != required[0]}
    properties = schema.get("properties") or {}
    if not properties:
        return []  # any object would do: only another kind of value does not
    first = next(iter(properties))
    wrong = "not-an-array" if _type(properties[first]) == "array" else []
    return {**value, first: wrong}
