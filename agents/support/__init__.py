"""The support pipeline: classify -> retrieve -> generate -> screen, with its budget and cache.

The face is lazy: a name is imported on first use, so registering the pipeline
(:mod:`agents.support.pipeline`) loads no model."""

from __future__ import annotations

import importlib
from typing import Any

# name -> module: imported on first use (PEP 562).
_FACE = {
    "SupportConfig": "services",
    "SupportServices": "services",
    "support_stages": "stages",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
