"""A stage for the crash test, run by `podium run` in a child process (so it can be killed -9)."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from streams.runtime.stage import Emit, Stage, StageContext

PREFIX_VARIABLE = "PODIUM_TEST_PREFIX"


def stages() -> list[Stage]:
    prefix = os.environ[PREFIX_VARIABLE]

    async def slow_model_call(note: dict[str, Any], ctx: StageContext) -> Emit:
        await asyncio.sleep(random.uniform(0.5, 2.0))  # a model call, seconds long
        return Emit(f"{prefix}.out", {**note, "hops": [*note["hops"], ctx.stage]})

    return [
        Stage(
            name="crashy",
            consumes=f"{prefix}.in",
            produces=(f"{prefix}.out",),
            handler=slow_model_call,
            max_in_flight=500,
        )
    ]
