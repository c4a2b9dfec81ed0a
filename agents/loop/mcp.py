"""The tools of an MCP server as :class:`~agents.loop.tools.Tool` s, over the official ``mcp`` SDK:
stdio when given a ``command`` (a server process the toolbox starts and owns), streamable HTTP
when given a ``url``.

The lifecycle, in order:

1. :meth:`McpToolbox.open` starts one connection and waits (within ``timeout_s``) until it has
   connected, initialised and listed every page of the server's tools; each becomes a Tool whose
   parameters are the server's ``inputSchema``. A server that does not come up fails the open
   with a :class:`~agents.loop.tools.ToolboxError` naming it.
2. A call checks its arguments against the schema here (so a bad call is ``invalid_arguments``,
   told field by field, without a round trip), then runs ``tools/call`` as a task of its own and
   waits for whichever ends first: the call, or the connection.
3. A connection that ends under a call (the process exited, the HTTP connection was cut) makes
   the call ``unavailable``; the next call starts a new connection (for stdio, a new process):
   one attempt, within that call's timeout. The loop calling the tools goes on either way.
4. :meth:`McpToolbox.close` ends the connection and waits for it: the server process stopped,
   the transports closed, no task left behind.

Why a task owns each connection: the SDK's transports are anyio task groups that must be entered
and exited in the same task, and a transport that fails cancels the task inside it. Held by a task
of its own, a failing connection cancels only that task, never a caller.

The SDK (about a second to import) is imported when a toolbox first connects, not with this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, cast

import pydantic_core

from agents.loop.tools import Tool, ToolboxError, ToolOutcome
from streams.errors import ConfigError

if TYPE_CHECKING:
    from types import TracebackType

    from mcp import Client
    from mcp.types import CallToolResult, ContentBlock, RequestParamsMeta, ToolAnnotations
    from mcp.types import Tool as McpTool

__all__ = ["McpToolbox", "outcome_of", "side_effect_of"]

log = logging.getLogger(__name__)

# Where a call's idempotency key travels: the request's _meta, which a server may read.
IDEMPOTENCY_META = "podium/idempotency_key"
# A listing longer than this many pages is a server that never stops paginating.
_MAX_PAGES = 100
# How long a connection may take to wind down (the SDK's own stdio shutdown is bounded by ~5 s).
_STOP_S = 10.0


def side_effect_of(annotations: ToolAnnotations | None) -> bool:
    """Whether a tool changes the world, from its MCP hints: read-only says no, destructive (or
    explicitly not read-only) says yes, no hint says no."""
    if annotations is None or annotations.read_only_hint is True:
        return False
    return annotations.destructive_hint is True or annotations.read_only_hint is False


def outcome_of(result: CallToolResult) -> ToolOutcome:
    """The model's view of a result: its structured content as JSON when it has some (the text
    blocks then usually repeat it), else its content blocks' text; ``isError`` is a failure."""
    if result.is_error:
        text = _text_of(result.content) or "the tool reported an error without a message"
        return ToolOutcome(text, is_error=True, error_type="failed")
    if result.structured_content is not None:
        return ToolOutcome(pydantic_core.to_json(result.structured_content).decode())
    return ToolOutcome(_text_of(result.content))


def _text_of(blocks: Sequence[ContentBlock]) -> str:
    from mcp.types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    parts = []
    for block in blocks:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, EmbeddedResource | ResourceLink):
            uri = block.resource.uri if isinstance(block, EmbeddedResource) else block.uri
            parts.append(f"[resource {uri}]")
        else:  # an image or audio: the model is told it is there, the bytes stay out of its text
            parts.append(f"[{block.type} {block.mime_type}]")
    return "\n".join(parts)


def _arguments_checker(schema: dict[str, Any]) -> Callable[[dict[str, Any]], list[str]]:
    """The problems of some arguments against a tool's input schema, each naming its field. A
    schema the validator cannot read checks nothing here: the server still checks."""
    from jsonschema import SchemaError, validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return lambda _arguments: []
    validator = cls(schema)

    def check(arguments: dict[str, Any]) -> list[str]:
        errors = sorted(validator.iter_errors(arguments), key=lambda error: list(map(str, error.path)))
        return [f"{'.'.join(map(str, error.path)) or 'arguments'}: {error.message}" for error in errors]

    return check


class _Connection:
    """One session with the server, entered, held and exited by one task this object owns."""

    def __init__(self, label: str, target: Callable[[], Client]) -> None:
        self._label = label
        self._target = target
        self._ready = asyncio.Event()  # set when the session is up, or when it ended trying
        self._stop = asyncio.Event()
        self.client: Client | None = None
        self.listing: list[McpTool] = []
        self.lost: str | None = None  # why it is of no more use, once it is not
        self._task = asyncio.create_task(self._hold(), name=f"mcp connection {label}")

    async def _hold(self) -> None:
        try:
            async with self._target() as client:
                self.listing = await _list_all(client)
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - the reason is handed to every caller that needs it
            self.lost = self.lost or _reason(exc)
            log.warning("%s: connection ended: %s", self._label, self.lost)
        finally:
            self.client = None
            self.lost = self.lost or "the connection was closed"
            self._ready.set()

    async def ready(self) -> Client:
        await self._ready.wait()
        if self.client is None:
            raise ToolboxError(f"{self._label} is unavailable: {self.lost}")
        return self.client

    @property
    def usable(self) -> bool:
        return self.lost is None

    async def call(self, name: str, arguments: dict[str, Any], idempotency_key: str) -> ToolOutcome:
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        try:
            client = await self.ready()
        except ToolboxError:  # it never came up (a reconnect a timed-out call had started, say)
            return self._unavailable()
        # RequestParamsMeta is an open TypedDict (PEP 728 extra items), which mypy reads as closed.
        meta = cast("RequestParamsMeta", {IDEMPOTENCY_META: idempotency_key})
        request = asyncio.create_task(
            client.call_tool(name, arguments, meta=meta), name=f"mcp call {self._label} {name}"
        )
        try:
            await asyncio.wait({request, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():  # the connection ended first, or this call was cancelled
                request.cancel()
                await asyncio.wait({request})
        if request.cancelled():
            self.lost = self.lost or "the call was cancelled under it"
            return self._unavailable()
        try:
            return outcome_of(request.result())
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise
            self.lost = self.lost or f"the connection closed mid-call ({exc.message})"
            return self._unavailable()

    def _unavailable(self) -> ToolOutcome:
        then = "" if self._stop.is_set() else "; the next call reconnects"
        return ToolOutcome(
            f"{self._label} is unavailable: {self.lost}{then}", is_error=True, error_type="unavailable"
        )

    async def stop(self) -> None:
        self.lost = self.lost or "the toolbox closed the connection"
        self._stop.set()
        if not self._ready.is_set():  # still connecting: nothing to wind down in order
            self._task.cancel()
        await asyncio.wait({self._task}, timeout=_STOP_S)
        if not self._task.done():
            log.warning("%s: connection did not close within %g s; cancelled", self._label, _STOP_S)
            self._task.cancel()
            await asyncio.wait({self._task})


async def _list_all(client: Client) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        if not page.next_cursor or page.next_cursor == cursor:
            return tools
        cursor = page.next_cursor
    raise ToolboxError(f"the tool listing did not end within {_MAX_PAGES} pages")


def _reason(exc: BaseException) -> str:
    """The first real error inside the task groups' exception groups, as "<Type>: <message>"."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class McpToolbox:
    """The tools of one MCP server: ``command`` (argv of a server speaking stdio, started and
    owned by the toolbox, with ``env`` added to a minimal environment) or ``url`` (streamable
    HTTP). Tools named in ``requires_approval`` wait for a person; ``timeout_s`` bounds opening
    and each call (a reconnect included)."""

    def __init__(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        url: str | None = None,
        requires_approval: frozenset[str] = frozenset(),
        timeout_s: float = 10.0,
    ) -> None:
        if (command is None) == (url is None):
            raise ConfigError(f"MCP toolbox {name!r}: give either command (stdio) or url (streamable HTTP)")
        if command is not None and not command:
            raise ConfigError(f"MCP toolbox {name!r}: command is empty")
        if env is not None and command is None:
            raise ConfigError(f"MCP toolbox {name!r}: env is for a command the toolbox starts, not a url")
        self.name = name
        self._command = tuple(command) if command is not None else None
        self._env = dict(env) if env is not None else None
        self._url = url
        self._requires_approval = requires_approval
        self._timeout_s = self.timeout_s = timeout_s
        where = url if url is not None else " ".join(self._command or ())
        self._label = f"MCP server {name!r} ({where})"
        self._connection: _Connection | None = None
        self._reconnecting = asyncio.Lock()
        self._tools: tuple[Tool, ...] | None = None
        self._closed = False

    def _client(self) -> Client:
        from mcp import Client, StdioServerParameters

        # cache=None: the listing is read once per connection; a cached one would hide a restart.
        if self._command is not None:
            program, *args = self._command
            return Client(StdioServerParameters(command=program, args=args, env=self._env), cache=None)
        assert self._url is not None
        return Client(self._url, cache=None)

    async def open(self) -> None:
        if self._tools is not None:
            return
        self._closed = False
        connection = _Connection(self._label, self._client)
        self._connection = connection
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.ready()
        except TimeoutError:
            await self.close()
            raise ToolboxError(f"{self._label} did not answer within {self._timeout_s:g} s") from None
        except BaseException:
            await self.close()
            raise
        self._tools = tuple(self._tool(listed) for listed in connection.listing)
        missing = self._requires_approval - {tool.name for tool in self._tools}
        if missing:  # a typo here would let a tool run unapproved
            await self.close()
            raise ConfigError(f"{self._label} has no tool {', '.join(sorted(missing))} (requires_approval)")

    def tools(self) -> tuple[Tool, ...]:
        if self._tools is None:
            raise ToolboxError(f"{self._label}: open() the toolbox before asking for its tools")
        return self._tools

    async def close(self) -> None:
        self._closed = True
        self._tools = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.stop()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _tool(self, listed: McpTool) -> Tool:
        check = _arguments_checker(listed.input_schema)

        async def invoke(arguments: str, idempotency_key: str) -> ToolOutcome:
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return _invalid([f"arguments: not valid JSON ({exc})"])
            if not isinstance(parsed, dict):
                return _invalid(["arguments: expected a JSON object"])
            problems = check(parsed)
            if problems:
                return _invalid(problems)
            connection = await self._usable_connection()
            if isinstance(connection, ToolOutcome):
                return connection
            return await connection.call(listed.name, parsed, idempotency_key)

        return Tool(
            name=listed.name,
            description=listed.description or listed.title or "",
            parameters=listed.input_schema,
            side_effect=side_effect_of(listed.annotations),
            requires_approval=listed.name in self._requires_approval,
            timeout_s=self._timeout_s,
            invoke=invoke,
        )

    async def _usable_connection(self) -> _Connection | ToolOutcome:
        """The open connection, or a new one in place of a lost one (one attempt per call)."""
        connection = self._connection
        if self._closed or connection is None:
            return self._is_closed()
        if connection.usable:
            return connection
        async with self._reconnecting:
            if self._connection is connection:  # no other call has replaced it meanwhile
                log.info("%s: reconnecting (%s)", self._label, connection.lost)
                await connection.stop()
                if self._closed:  # closed while the old one wound down: start nothing
                    return self._is_closed()
                self._connection = _Connection(self._label, self._client)
            current = self._connection
        return self._is_closed() if self._closed or current is None else current

    def _is_closed(self) -> ToolOutcome:
        return ToolOutcome(f"{self._label} is closed", is_error=True, error_type="unavailable")


def _invalid(problems: list[str]) -> ToolOutcome:
    return ToolOutcome(
        "invalid arguments: " + "; ".join(problems), is_error=True, error_type="invalid_arguments"
    )
