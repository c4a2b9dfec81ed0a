"""``podium serve``: the HTTP gateway in front of the pipelines.

- ``POST /v1/{pipeline}/requests``: validate the JSON body against the pipeline's input schema
  (422 names the field), publish it with a request id, trace and deadline, and wait (bounded by
  ``wait_s``) for the record it ends as: 200 with the result and the topic it ended in, or 202
  with the request id when it is still on its way. A body its topic's schema cannot carry is a
  422 naming the field (FastAPI's validation shape), a record larger than its topic accepts a
  413 before anything is published, Kafka refusing the record for good (this gateway may not
  write there) a 500 saying so. A broker that does not acknowledge within ``publish_timeout_s``
  gives 503, never a hang: 503 means that and nothing else, so a client may retry it. With
  ``stream=true`` the answer is a stream of server-sent events instead: ``accepted``, then
  ``token`` / ``reset`` / ``draft_done`` relayed from the pipeline's token chunks as the
  generate stage writes them (unscreened: a client shows them as a draft), then ``final`` with
  the screened result and the topic it ended in (or ``pending`` when ``wait_s`` ran out).
  The ``final`` text is what the client keeps.
- ``GET /v1/requests/{id}``: ``done`` with the result, ``pending``, or 404.
- ``GET /v1/approvals``: the agents' actions waiting for a person (``all=true``: decided ones
  too); ``POST /v1/approvals/{request_id}`` decides them: 202 with the decisions published
  (acknowledged by Kafka), 404 when nothing was asked for that id (or that call), 409 when it
  was decided already or expired (naming by whom and when), 503 when Kafka did not answer.
- ``GET /healthz``; the OpenAPI spec at ``/openapi.json`` and its page at ``/docs``.

Every route but ``/healthz`` and the OpenAPI pages needs a credential (:mod:`streams.ingress.auth`:
401, 403, 429, the tenant from the credential, each caller seeing its own tenant's requests and
approvals only).

Bodies are limited before they are parsed (413, checked against Content-Length before a byte
is read): a pipeline's to three times the record its topic accepts (JSON escapes: a character
UTF-8 writes in 2 bytes is 6 as a ``\\u`` escape, an emoji's 4 bytes are 12 as a surrogate pair),
every other route's to 64 KiB. JSON nested deeper than Python's parser goes is FastAPI's 400.
Header sizes and slow clients are the server's concern: :mod:`.server`.

Request bodies are pydantic models built from the Avro schemas (one per pipeline), so the
OpenAPI spec shows the same fields the topics carry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model, field_validator

from streams.contracts.headers import new_request_id, now_ms
from streams.errors import (
    AccessError,
    ApprovalClosed,
    ApprovalError,
    BrokerError,
    PayloadTooLarge,
    PodiumError,
    PublishRefused,
    ToolMissing,
    UnencodableRecord,
    UnknownApproval,
    UnknownCall,
    UnknownSchema,
)
from streams.ingress.approvals import MAX_BY_CHARS, MAX_REASON_CHARS, TIMEOUT_BY, Approval, Approvals
from streams.ingress.auth import (
    ACCESS_RESPONSES,
    ANONYMOUS,
    Authenticator,
    Caller,
    bind_tenant,
    problem,
    tenant_of,
)
from streams.ingress.publish import Publisher, record_limit
from streams.ingress.replies import ReplyRouter, StreamRouter
from streams.kafka.connection import Cluster
from streams.kafka.follow import Arrival
from streams.kafka.readable import describe
from streams.runtime.project import Project
from streams.telemetry.otel import Telemetry

log = logging.getLogger(__name__)

__all__ = ["Entry", "create_app", "model_for_schema"]

SMALL_BODY_BYTES = 64 * 1024  # an approval's decision and the like: text of a few KiB at most
_JSON_EXPANSION = 3  # the most JSON escapes make of UTF-8 (see the module docstring)

_PRIMITIVES: dict[str, Any] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "bytes": str,
}


def _python_type(avro: Any) -> Any:
    if isinstance(avro, str):
        return _PRIMITIVES.get(avro, Any)
    if isinstance(avro, list):
        others = [t for t in avro if t != "null"]
        inner = _python_type(others[0]) if len(others) == 1 else Any
        return inner | None if "null" in avro else inner
    if isinstance(avro, dict) and avro.get("type") == "array":
        return list[_python_type(avro["items"])]  # type: ignore[misc]
    if isinstance(avro, dict) and avro.get("type") == "map":
        return dict[str, _python_type(avro["values"])]  # type: ignore[misc]
    return Any


def model_for_schema(schema: dict[str, Any], skip: Sequence[str] = ()) -> type[BaseModel]:
    """A pydantic model with the record schema's fields (required unless they have a default)."""
    fields: dict[str, Any] = {}
    for f in schema["fields"]:
        if f["name"] in skip:
            continue
        default = f.get("default", ...)
        fields[f["name"]] = (_python_type(f["type"]), default)
    config = ConfigDict(extra="forbid", title=schema["name"])
    return create_model(schema["name"], __config__=config, **fields)


@dataclass(frozen=True)
class Entry:
    """One pipeline the gateway fronts: where requests go in and where they end."""

    pipeline: str
    input_topic: str
    terminal: tuple[str, ...]
    stream_topic: str | None = None  # token chunks (podium.StreamChunk), if the pipeline streams


class Accepted(BaseModel):
    request_id: str
    status: str  # done | pending
    topic: str | None = None
    trace_id: str | None = None
    result: dict[str, Any] | None = None


def create_app(
    project: Project,
    entries: Sequence[Entry],
    *,
    cluster: Cluster,
    auth: Authenticator,
    publish_timeout_s: float = 5.0,
    max_wait_s: float = 30.0,
    telemetry: Telemetry | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """``auth``: who may call (``Authenticator.open()`` lets everyone in); ``telemetry``: where
    the ingress spans go; requests are traced only when it records; ``max_body_bytes``: the
    largest body a pipeline's route reads (unset: three times what its topic accepts)."""
    terminal = sorted({t for e in entries for t in e.terminal})
    streams = sorted({e.stream_topic for e in entries if e.stream_topic})
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with (
            Publisher(
                cluster=cluster, catalog=project.catalog, codec=project.codec, telemetry=telemetry
            ) as publisher,
            ReplyRouter(cluster, terminal) as router,
            StreamRouter(cluster, streams) as chunks,
            Approvals(
                cluster=cluster,
                catalog=project.catalog,
                codec=project.codec,
                publisher=publisher,
                publish_timeout_s=publish_timeout_s,
                read_timeout_s=publish_timeout_s,
            ) as approvals,
        ):
            state.update(publisher=publisher, router=router, chunks=chunks, approvals=approvals)
            yield

    app = FastAPI(
        title="podium",
        summary="Publish requests to podium's pipelines and read their results.",
        lifespan=lifespan,
        max_body_size=SMALL_BODY_BYTES,
    )
    auth.install(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but ASCII: it echoes the input, and a lone surrogate in it made
        # the 422 itself fail to encode (a 500).
        return _AsciiJSON({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    def result(arrival: Arrival) -> Accepted:
        described = describe(arrival, project.catalog, project.codec)
        return Accepted(
            request_id=arrival.request_id,
            status="done",
            topic=arrival.topic,
            trace_id=described["trace_id"],
            result=described["value"],
        )

    for entry in entries:
        schema = project.schemas.current(project.catalog.get(entry.input_topic).value_schema).raw
        body_model = model_for_schema(schema, skip=("request_id",))
        body_limit = max_body_bytes or _JSON_EXPANSION * record_limit(
            project.catalog.get(entry.input_topic).max_message_bytes
        )
        _add_route(
            app, project, entry, body_model, state, result, publish_timeout_s, max_wait_s, auth, body_limit
        )

    # scope="request": the caller's slot is held until the response is sent, a stream included.
    anyone = Depends(auth.dependency(), scope="request")

    @app.get("/v1/requests/{request_id}", response_model=Accepted, responses=ACCESS_RESPONSES)
    async def status(request_id: str, caller: Caller = anyone) -> Accepted:
        router: ReplyRouter = state["router"]
        # Another tenant's request is as unknown as one never made: a 403 would say it exists.
        if (done := router.recent(request_id)) is not None and caller.sees(tenant_of(done.headers)):
            return result(done)
        if done is None and router.pending(request_id) and caller.sees(router.tenant(request_id)):
            return Accepted(request_id=request_id, status="pending")
        raise HTTPException(
            404,
            f"request {request_id} is unknown here (not published through this gateway "
            "since it started, and no result seen since then)",
        )

    _add_approval_routes(app, state, auth)

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        router: ReplyRouter | None = state.get("router")
        approvals: Approvals | None = state.get("approvals")
        return {"ok": router is not None and router.healthy and approvals is not None and approvals.healthy}

    return app


def _add_route(
    app: FastAPI,
    project: Project,
    entry: Entry,
    body_model: type[BaseModel],
    state: dict[str, Any],
    result: Any,
    publish_timeout_s: float,
    max_wait_s: float,
    auth: Authenticator,
    max_body_bytes: int,
) -> None:
    this_pipeline = Depends(auth.dependency(entry.pipeline), scope="request")

    async def submit(
        body: BaseModel,
        wait_s: float = Query(10.0, ge=0, le=max_wait_s),
        stream: bool = Query(False, description="Answer with server-sent events as tokens arrive."),
        caller: Caller = this_pipeline,
    ) -> Any:
        publisher: Publisher = state["publisher"]
        router: ReplyRouter = state["router"]
        chunks: StreamRouter = state["chunks"]
        if stream and entry.stream_topic is None:
            raise HTTPException(400, f"the {entry.pipeline} pipeline does not stream tokens")
        try:
            record = bind_tenant(caller, body.model_dump())
        except AccessError as exc:
            raise problem(exc) from None
        request_id = new_request_id()
        router.expect(request_id, caller.tenant)
        queue = chunks.subscribe(request_id) if stream else None
        try:
            async with asyncio.timeout(publish_timeout_s):
                await publisher.publish(
                    entry.input_topic, record, request_id=request_id, tenant=caller.tenant, strict=True
                )
        except (TimeoutError, PodiumError) as exc:
            router.forget(request_id)
            chunks.unsubscribe(request_id)
            if isinstance(exc, TimeoutError):
                exc = BrokerError(f"Kafka did not acknowledge within {publish_timeout_s:g}s")
            return _problem(exc, prefix="could not accept the request: ")
        if queue is not None:
            events = _events(project, request_id, queue, router, chunks, result, wait_s)
            return StreamingResponse(events, media_type="text/event-stream")
        arrival = await router.wait(request_id, wait_s)
        if arrival is None:
            return JSONResponse(
                Accepted(request_id=request_id, status="pending").model_dump(), status_code=202
            )
        return result(arrival)

    # FastAPI reads the body's model from the annotation: this pipeline's own (the module's
    # postponed annotations are strings, so the class is set here, not in the signature).
    submit.__annotations__["body"] = body_model
    app.post(
        f"/v1/{entry.pipeline}/requests",
        response_model=Accepted,
        summary=f"Publish a request to {entry.input_topic} and wait for where it ends",
        max_body_size=max_body_bytes,
        responses={
            202: {"model": Accepted},
            **ACCESS_RESPONSES,
            413: {
                "description": f"a body over {max_body_bytes:,} bytes, or a record larger than "
                f"{entry.input_topic} accepts: nothing was published"
            },
            422: {"description": "a field the schema does not allow, or a value it cannot carry (named)"},
            503: {"description": "Kafka unreachable or not acknowledging: retry later"},
        },
    )(submit)


class DecisionBody(BaseModel):
    """A person's decision on what a request waits for."""

    model_config = ConfigDict(extra="forbid")

    approved: StrictBool = Field(description="true approves, false denies")
    reason: str = Field("", max_length=MAX_REASON_CHARS, description="why, for the agent and the record")
    call_id: str | None = Field(None, description="decide only this call (default: every waiting call)")
    by: str = Field("", max_length=MAX_BY_CHARS, description="who decides")

    @field_validator("by")
    @classmethod
    def _a_person(cls, by: str) -> str:
        if by == TIMEOUT_BY:
            raise ValueError(f"'{TIMEOUT_BY}' signs the agent's own denials: decide under your own name")
        return by


class DecisionView(BaseModel):
    request_id: str
    call_id: str
    approved: bool
    reason: str
    by: str
    at_ms: int


class ApprovalView(BaseModel):
    request_id: str
    call_id: str
    pipeline: str
    action: str
    arguments: str = Field(description="JSON text")
    summary: str
    topic: str
    decisions_topic: str
    expires_ms: int
    at_ms: int
    state: str = Field(description="pending | approved | denied | expired")
    tenant: str | None = Field(None, description="the tenant of the request that asked")
    left_s: float | None = Field(description="seconds left to decide, while pending")
    decision: DecisionView | None


class Decided(BaseModel):
    request_id: str
    decisions: list[ApprovalView]


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate a client sent is echoed
    back as ``\\ud800`` instead of failing the response's UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def status_for(exc: PodiumError) -> int:
    """The one place a podium error becomes an HTTP status (a pure decision).

    503 only for Kafka not acknowledging (or not answering a read): the one error a client's
    retry can cure. What the client sent gets a 4xx; what is wrong with this gateway's own setup
    (Kafka refusing its writes, a catalog or schema it cannot use) a 500 that says so, and a
    schema registry that failed it a 502.
    """
    if isinstance(exc, UnencodableRecord | ApprovalError):
        if isinstance(exc, UnknownApproval | UnknownCall):
            return 404
        if isinstance(exc, ApprovalClosed):
            return 409
        return 422
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, UnknownSchema):
        return 502  # only the registry fails an encode this way (codec.py)
    if isinstance(exc, PublishRefused | ToolMissing):
        return 500  # Kafka answered: no retry helps until this gateway's setup is fixed
    if isinstance(exc, BrokerError):
        return 503
    return 500


def _problem(exc: PodiumError, prefix: str = "") -> JSONResponse:
    """An error as its status and a detail; an unencodable value in FastAPI's own validation
    shape (``loc`` names the field), so a client reads one shape for every 422."""
    status = status_for(exc)
    if isinstance(exc, UnencodableRecord):
        # ASCII: the path may hold a map key the client sent, a lone surrogate and all.
        problem = {"type": "unencodable", "loc": ["body", *exc.path], "msg": exc.reason}
        return _AsciiJSON({"detail": [problem]}, status_code=status)
    if status in (500, 502):
        # The gateway's own setup failed (Kafka refusing its writes, a schema it cannot use):
        # the cause names principals, topics and grants, which are the operator's to read, not
        # a caller's. The caller gets an id to quote; the log has the cause.
        error_id = uuid.uuid4().hex[:12]
        log.error("podium serve: %s%s (error %s)", prefix, exc, error_id)
        detail = (
            f"{prefix}podium serve could not handle this request because of its own setup "
            f"(error {error_id}); its operator finds the cause in the serve log"
        )
        return JSONResponse({"detail": detail}, status_code=status)
    return JSONResponse({"detail": f"{prefix}{exc}"}, status_code=status)


def _add_approval_routes(app: FastAPI, state: dict[str, Any], auth: Authenticator) -> None:
    anyone = Depends(auth.dependency(), scope="request")
    problems: dict[int | str, dict[str, Any]] = {
        **ACCESS_RESPONSES,
        404: {"description": "no approval was asked for that request id (or that call)"},
        409: {"description": "decided already or expired: the detail names by whom and when"},
        503: {"description": "Kafka did not acknowledge (or could not be read)"},
    }

    @app.get(
        "/v1/approvals",
        response_model=list[ApprovalView],
        summary="The agents' actions waiting for a person's decision",
        responses={**ACCESS_RESPONSES, 503: problems[503]},
    )
    async def approvals(
        every: bool = Query(False, alias="all", description="Decided and expired ones too."),
        caller: Caller = anyone,
    ) -> Any:
        desk: Approvals = state["approvals"]
        try:
            found = await (desk.approvals() if every else desk.pending())
        except PodiumError as exc:
            return _problem(exc)
        at = now_ms()
        return [a.view(at) for a in found if _visible(caller, a)]

    @app.post(
        "/v1/approvals/{request_id}",
        status_code=202,
        response_model=Decided,
        summary="Approve or deny what a request waits for (one decision per waiting call)",
        responses=problems,
    )
    async def decide(request_id: str, body: DecisionBody, caller: Caller = anyone) -> Any:
        desk: Approvals = state["approvals"]
        try:
            decided = await desk.decide(
                request_id,
                body.approved,
                reason=body.reason,
                by=_signed(body.by, caller),
                call_id=body.call_id,
                visible=lambda a: _visible(caller, a),
            )
        except PodiumError as exc:
            return _problem(exc)
        at = now_ms()
        return Decided(request_id=request_id, decisions=[ApprovalView(**a.view(at)) for a in decided])


def _signed(by: str, caller: Caller) -> str:
    """Who decided, as the record keeps it: the name the client gives is a label, the caller the
    gateway authenticated is the signature (so a key cannot decide in someone else's name)."""
    if caller is ANONYMOUS:
        return by
    return f"{by} ({caller.id})" if by else caller.id


def _visible(caller: Caller, approval: Approval) -> bool:
    """A caller sees the approvals its tenant's requests asked, in its pipelines."""
    return caller.sees(approval.tenant) and caller.may_call(approval.pipeline)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _events(
    project: Project,
    request_id: str,
    queue: asyncio.Queue[Arrival],
    router: ReplyRouter,
    chunks: StreamRouter,
    result: Any,
    wait_s: float,
) -> AsyncIterator[bytes]:
    """Relay token chunks until the request's terminal record arrives (or ``wait_s`` passes)."""
    kinds = {"TEXT": "token", "RESET": "reset", "FINAL": "draft_done"}
    ended = asyncio.create_task(router.wait(request_id, wait_s))
    try:
        yield _sse("accepted", {"request_id": request_id})
        while True:
            next_chunk = asyncio.create_task(queue.get())
            await asyncio.wait({next_chunk, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not next_chunk.done():
                next_chunk.cancel()
            else:
                chunk = project.codec.decode("podium.StreamChunk", next_chunk.result().value or b"")
                yield _sse(kinds[chunk["kind"]], {"seq": chunk["seq"], "text": chunk["text"]})
                continue
            while not queue.empty():  # chunks that came in with the final record
                chunk = project.codec.decode("podium.StreamChunk", queue.get_nowait().value or b"")
                yield _sse(kinds[chunk["kind"]], {"seq": chunk["seq"], "text": chunk["text"]})
            arrival = ended.result()
            if arrival is None:
                yield _sse("pending", {"request_id": request_id})
            else:
                yield _sse("final", result(arrival).model_dump())
            return
    finally:
        ended.cancel()
        chunks.unsubscribe(request_id)
