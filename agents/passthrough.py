"""The foundation's demo pipeline: two pass-through stages that stamp each note.

``demo.notes`` -> ``stamp`` -> ``demo.stamped`` -> ``finish`` -> ``demo.done``. They do no AI work;
they exist so that the runtime's guarantees can be seen end to end before the AI stages land.
"""

from __future__ import annotations

from typing import TypedDict

from streams.runtime import Emit, Pipeline, Stage, StageContext

__all__ = ["DEMO", "FINISH", "STAMP", "Note"]


class Note(TypedDict):
    """``podium.demo.Note`` as decoded (schemas/note.avsc; a test keeps the two in step)."""

    request_id: str
    text: str
    hops: list[str]
    priority: int


def _stamped(note: Note, stage: str) -> dict[str, object]:
    return {**note, "hops": [*note["hops"], stage]}


async def stamp(note: Note, ctx: StageContext) -> Emit:
    return Emit("demo.stamped", _stamped(note, ctx.stage))


async def finish(note: Note, ctx: StageContext) -> Emit:
    return Emit("demo.done", _stamped(note, ctx.stage))


STAMP: Stage[Note] = Stage(name="stamp", consumes="demo.notes", produces=("demo.stamped",), handler=stamp)
FINISH: Stage[Note] = Stage(name="finish", consumes="demo.stamped", produces=("demo.done",), handler=finish)

# The runtime's own two-stage pipeline (``podium run demo``): not started by `up` or `demo`.
DEMO = Pipeline(
    name="demo",
    summary="stamp, finish (pass-through, no AI work)",
    build=lambda _build: [STAMP, FINISH],
    default=False,
)
