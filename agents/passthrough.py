"""The foundation's demo pipeline: two pass-through stages that stamp each note.

``demo.notes`` -> ``stamp`` -> ``demo.stamped`` -> ``finish`` -> ``demo.done``. They do no AI work;
they exist so that the runtime's guarantees can be seen end to end before the AI stages land.
"""

from __future__ import annotations

from streams.stage import Emit, Record, Stage, StageContext

__all__ = ["FINISH", "STAMP"]


async def stamp(note: Record, ctx: StageContext) -> Emit:
    return Emit("demo.stamped", {**note, "hops": [*note["hops"], ctx.stage]})


async def finish(note: Record, ctx: StageContext) -> Emit:
    return Emit("demo.done", {**note, "hops": [*note["hops"], ctx.stage]})


STAMP = Stage(name="stamp", consumes="demo.notes", produces=("demo.stamped",), handler=stamp)
FINISH = Stage(name="finish", consumes="demo.stamped", produces=("demo.done",), handler=finish)
