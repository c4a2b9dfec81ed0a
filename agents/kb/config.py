"""The knowledge base's configuration: read once at the entry point, from the settings and the
``kb:`` section of ``pipelines.yaml``, and passed down. Light to import (no model, no store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from agents.rag.chunking import ChunkingPolicy
from agents.rag.parsing import Limits

if TYPE_CHECKING:
    from streams.config import Settings

__all__ = ["KbConfig", "KbTuning", "kb_config"]


@dataclass(frozen=True)
class KbTuning:
    """The ``kb:`` section of ``pipelines.yaml``."""

    limits: Limits = field(default_factory=Limits)
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)
    embed_batch: int = 64  # texts per embeddings call, gathered across the records in flight

    def __post_init__(self) -> None:
        if self.embed_batch < 1:
            raise ValueError("embed_batch must be at least 1")


@dataclass(frozen=True)
class KbConfig:
    models: Path  # models.yaml: the ``embed`` policy
    home: Path = Path(".podium")  # PODIUM_HOME: the LanceDB index lives under <home>/vectors
    # PODIUM_VECTOR_URL: a pgvector database instead; a SecretStr, as it may hold a password.
    vector_url: SecretStr | None = None
    tuning: KbTuning = field(default_factory=KbTuning)


def kb_config(settings: Settings, tuning: KbTuning | None) -> KbConfig:
    """The configuration from the settings and the parsed ``kb:`` section (None: defaults)."""
    return KbConfig(
        models=settings.models_file,
        home=settings.home,
        vector_url=settings.vector_url,
        tuning=tuning or KbTuning(),
    )
