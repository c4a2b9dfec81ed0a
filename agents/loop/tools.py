"""Tools an agent's model may call: a typed Python function made a :class:`Tool` by :func:`tool`,
or the tools of an MCP server (:mod:`agents.loop.mcp`), behind one contract.

A call is JSON text in (``ToolCall.arguments``, as the model wrote it) and a :class:`ToolOutcome`
out. :meth:`Tool.run` never raises for the tool's own failure, so the stage running it always has
something to publish and the model always hears why::

    arguments that do not parse or fit the schema   invalid_arguments  names the field(s), so the
                                                                        model can repair its call
    no answer within ``timeout_s``                  timeout
    the tool raised :class:`ToolError`              failed             its message, as is
    the tool raised anything else                   failed             "<Type>: <message>"
    the tool's server is gone (MCP)                 unavailable        names the server

Only cancellation passes through: the stage that cancels a call decides what it means.

Errors (under :class:`streams.errors.PodiumError`)::

    PodiumError
    ├── ToolError            raised by a tool to tell the model what went wrong
    ├── ToolDefinitionError  @tool cannot describe the function (also a TypeError)
    └── ToolboxError         a toolbox cannot be opened, or is used before open()
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, get_type_hints, overload

import pydantic
import pydantic_core

from agents.gateway.providers.protocol import ToolSpec
from streams.errors import PodiumError

__all__ = [
    "Invoke",
    "Tool",
    "ToolDefinitionError",
    "ToolError",
    "ToolOutcome",
    "Toolbox",
    "ToolboxError",
    "tool",
]

log = logging.getLogger(__name__)

# The parameter a function names to receive the call's id (the key its side effect is deduplicated on).
IDEMPOTENCY_KEY = "idempotency_key"
# The names OpenAI and Anthropic both accept for a tool.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How much of a rejected value an error message repeats back to the model.
_ECHO_CHARS = 60
# JSON Schema keywords whose value maps names to schemas, and those whose value is data.
_NAMED_KEYWORDS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})


class ToolError(PodiumError):
    """Raised by a tool to tell the model what went wrong; its message reaches the model as is."""

    dead_letter_reason = "tool"


class ToolDefinitionError(PodiumError, TypeError):
    """:func:`tool` cannot describe the function: a parameter without a type, ``*args``, no
    description, or a name the model providers reject. Raised when the module is imported."""

    dead_letter_reason = "tool_definition"


class ToolboxError(PodiumError):
    """A toolbox cannot be opened (its server does not start or answer), or is used unopened."""

    retryable = True
    dead_letter_reason = "toolbox"


@dataclass(frozen=True)
class ToolOutcome:
    """What a call became. ``content`` is what the model reads: the JSON text of the return value
    (a ``str`` as is), or the error message."""

    content: str
    is_error: bool = False
    error_type: str = ""  # "invalid_arguments" | "timeout" | "failed" | "unavailable" ("" when ok)


# How a tool carries out one call: the arguments' JSON text and the idempotency key in, an outcome
# out. It may raise; Tool.run turns that into an outcome.
Invoke = Callable[[str, str], Awaitable[ToolOutcome]]


# eq=False: a tool is a thing with behaviour (two tools that read alike may act differently), so it
# compares and hashes by identity and can key a dict.
@dataclass(frozen=True, eq=False)
class Tool:
    """A tool the model may call. ``side_effect`` tools run at most once per call id and
    ``requires_approval`` ones wait for a person: the stage running them enforces both."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema the model sees
    side_effect: bool = False
    requires_approval: bool = False
    timeout_s: float = 10.0
    invoke: Invoke = field(kw_only=True, repr=False)

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    async def run(self, arguments: str, *, idempotency_key: str) -> ToolOutcome:
        """Carry out one call within ``timeout_s``; only cancellation raises."""
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                return await self.invoke(arguments, idempotency_key)
        except TimeoutError as exc:
            if not deadline.expired():  # the tool's own timeout (say, of a call it made) is a failure
                return _failed(self.name, exc)
            return ToolOutcome(
                f"{self.name} did not finish within {self.timeout_s:g} s", is_error=True, error_type="timeout"
            )
        except ToolError as exc:
            return ToolOutcome(str(exc) or type(exc).__name__, is_error=True, error_type="failed")
        except Exception as exc:  # noqa: BLE001 - the model hears of it; the log keeps the traceback
            return _failed(self.name, exc)


def _failed(name: str, exc: Exception) -> ToolOutcome:
    log.warning("tool %s failed", name, exc_info=exc)
    return ToolOutcome(f"{type(exc).__name__}: {exc}", is_error=True, error_type="failed")


class Toolbox(Protocol):
    """A group of tools that needs opening first (a connection to a server)."""

    name: str
    timeout_s: float  # the longest any of its calls may take

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def tools(self) -> tuple[Tool, ...]:
        """The tools, valid after :meth:`open`."""
        ...


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    requires_approval: bool = False,
    timeout_s: float = 10.0,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    requires_approval: bool = False,
    timeout_s: float = 10.0,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed function (sync or async) a :class:`Tool`, as ``@tool`` or ``@tool(...)``.

    The parameters' JSON Schema comes from their annotations through pydantic
    (``Annotated[int, Field(description=...)]`` describes one); the description defaults to the
    docstring's first paragraph. A parameter named ``idempotency_key`` receives the call's id and
    is not shown to the model. The return value reaches the model as JSON (a ``str`` as is).

    A sync function runs in a worker thread so a slow one does not stall the event loop. A thread
    cannot be stopped: past its timeout the call is reported as timed out but the function runs on
    until it returns, so give a tool with a side effect an async body that can be cancelled.
    """

    def make(function: Callable[..., Any]) -> Tool:
        return _function_tool(
            function,
            name=name or function.__name__,
            description=description,
            side_effect=side_effect,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
        )

    return make if fn is None else make(fn)


def _function_tool(
    fn: Callable[..., Any],
    *,
    name: str,
    description: str | None,
    side_effect: bool,
    requires_approval: bool,
    timeout_s: float,
) -> Tool:
    if not _TOOL_NAME.fullmatch(name):
        raise ToolDefinitionError(f"tool name {name!r}: use 1 to 64 letters, digits, '_' or '-'")
    about = description if description is not None else _first_paragraph(inspect.getdoc(fn))
    if not about:
        raise ToolDefinitionError(f"tool {name}: give it a docstring or description= (the model reads it)")
    model, aliases, wants_key = _arguments_model(fn, name)
    is_async = inspect.iscoroutinefunction(fn)

    async def invoke(arguments: str, idempotency_key: str) -> ToolOutcome:
        try:
            # Some models send "" for a tool without parameters.
            parsed = model.model_validate_json(arguments if arguments.strip() else "{}")
        except pydantic.ValidationError as exc:
            return ToolOutcome(_describe(exc), is_error=True, error_type="invalid_arguments")
        kwargs = {alias: getattr(parsed, attr) for attr, alias in aliases.items()}
        if wants_key:
            kwargs[IDEMPOTENCY_KEY] = idempotency_key
        value = await fn(**kwargs) if is_async else await asyncio.to_thread(fn, **kwargs)
        return ToolOutcome(value if isinstance(value, str) else pydantic_core.to_json(value).decode())

    return Tool(
        name=name,
        description=about,
        parameters=_untitled(model.model_json_schema()),
        side_effect=side_effect,
        requires_approval=requires_approval,
        timeout_s=timeout_s,
        invoke=invoke,
    )


def _arguments_model(
    fn: Callable[..., Any], name: str
) -> tuple[type[pydantic.BaseModel], dict[str, str], bool]:
    """A pydantic model of the function's parameters, the parameter each of its fields fills, and
    whether the function takes the idempotency key.

    Fields are named ``p0``, ``p1``... with the parameter's name as alias, so a parameter may be
    called ``schema``, ``json`` or ``_id`` without shadowing or upsetting BaseModel."""
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:  # any failure to resolve them is the definition's
        raise ToolDefinitionError(f"tool {name}: its annotations do not resolve ({exc})") from exc
    fields: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    wants_key = False
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.name == IDEMPOTENCY_KEY:
            wants_key = True
            continue
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise ToolDefinitionError(f"tool {name}: parameter {parameter.name!r} must be passable by name")
        if parameter.name not in hints:
            raise ToolDefinitionError(
                f"tool {name}: annotate parameter {parameter.name!r} (the model needs its type)"
            )
        default = ... if parameter.default is parameter.empty else parameter.default
        attr = f"p{len(fields)}"
        fields[attr] = (hints[parameter.name], pydantic.Field(default, alias=parameter.name))
        aliases[attr] = parameter.name
    config = pydantic.ConfigDict(extra="forbid")  # an argument the tool does not take is a mistake to hear of
    model = pydantic.create_model(f"{name}_arguments", __config__=config, **fields)
    return model, aliases, wants_key


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())


def _describe(exc: pydantic.ValidationError) -> str:
    """Each problem on its field, with what was expected and (for a wrong value) what was given."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problem = f"{where}: {error['msg']}"
        if error["type"] not in ("missing", "extra_forbidden", "json_invalid"):
            given = json.dumps(error["input"], default=str)
            problem += f" (got {given[:_ECHO_CHARS]}{'...' if len(given) > _ECHO_CHARS else ''})"
        problems.append(problem)
    return "invalid arguments: " + "; ".join(problems)


def _untitled(schema: Any) -> Any:
    """The schema without pydantic's generated titles ("Account", "Address"): noise the model pays
    for. Under ``properties`` and ``$defs`` the keys are names (a field called ``title`` stays), and
    ``default``, ``enum`` and the like hold values, left as they are."""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: value
        if key in _DATA_KEYWORDS
        else {name: _untitled(sub) for name, sub in value.items()}
        if key in _NAMED_KEYWORDS and isinstance(value, dict)
        else _untitled(value)
        for key, value in schema.items()
        if key != "title"
    }
