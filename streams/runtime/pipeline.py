"""How the runtime receives pipelines: a :class:`Pipeline` value per pipeline, registered by the
code that owns its stages (``agents``), so the runtime and its commands never name one.

A pipeline says how to build its stages from the settings, which section of ``pipelines.yaml``
is its own (the runtime reads the file once, refuses keys no pipeline owns, and hands each
section to its pipeline's parser), and how ``podium demo`` shows it. :class:`Pipelines` is the
registry the entry point passes to :class:`~streams.runtime.project.Project`; it also holds the
model setups ``--provider`` chooses between (the offline models, the simulator, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from streams.config import Settings
from streams.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from streams.runtime.project import Project
    from streams.runtime.stage import Stage
    from streams.runtime.window_join import WindowStage

__all__ = ["Build", "ModelSetup", "Pipeline", "Pipelines", "Section", "load_sections"]

Built = Sequence["Stage[Any] | WindowStage"]


@dataclass(frozen=True)
class Section:
    """One pipeline's part of ``pipelines.yaml``, with the file and key path for errors."""

    path: Path
    prefix: str
    values: Mapping[str, Any]

    def child(self, key: str) -> Section:
        value = self.values.get(key) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.path}: {self.prefix}{key} must be a mapping")
        return Section(self.path, f"{self.prefix}{key}.", value)

    def known(self, allowed: set[str]) -> None:
        """Refuse a key the pipeline does not read (a typo would otherwise be silently ignored)."""
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            raise ConfigError(
                f"{self.path}: unknown key {self.prefix}{unknown[0]} (known: {', '.join(sorted(allowed))})"
            )

    def fail(self, exc: Exception) -> ConfigError:
        return ConfigError(f"{self.path}: {self.prefix.rstrip('.')}: {exc}")


@dataclass(frozen=True)
class Build:
    """What a pipeline's stages are built from."""

    settings: Settings
    #: Its ``pipelines.yaml`` section as its parser returned it (None: it has no parser).
    section: Any
    #: What every pipeline of the process shares (:attr:`Pipelines.shared`, made once per project:
    #: podium's pipelines share one model gateway, so a provider's rate limit holds for them all).
    shared: Any
    #: Stages that publish nothing of their own beside what their handlers return
    #: (``podium replay --stage --with``).
    dry_run: bool = False


@dataclass(frozen=True)
class Pipeline:
    """A pipeline as the runtime sees it."""

    name: str
    #: What it does, for headings and help ("classify, retrieve, generate, screen").
    summary: str
    build: Callable[[Build], Built]
    #: Its section of ``pipelines.yaml`` -> the frozen object ``build`` receives (None: no section).
    parse: Callable[[Section], Any] | None = None
    #: ``podium demo``: (project, console, reports folder) -> exit code.
    demo: Callable[[Project, Console, Path], Awaitable[int]] | None = None
    #: How a person sends it one request (``podium up`` prints it).
    try_it: str = ""
    #: Started by ``podium up`` and ``podium demo`` when no pipeline is named.
    default: bool = True
    #: Fronted by ``podium serve`` when no pipeline is named.
    served: bool = False


@dataclass(frozen=True)
class ModelSetup:
    """A choice of ``--provider``: which models file the stages use, and what to start first."""

    name: str
    summary: str
    #: Replaces ``PODIUM_MODELS`` (None: keep it).
    models_file: Path | None = None
    #: Started around the stages (e.g. the provider simulator), given the console to print to.
    start: Callable[[Console], AbstractContextManager[None]] | None = None


@dataclass(frozen=True)
class Pipelines:
    """The registry: pipelines by name, in the order they were registered, and model setups."""

    pipelines: tuple[Pipeline, ...] = ()
    model_setups: tuple[ModelSetup, ...] = field(default=(ModelSetup("local", "the configured models"),))
    #: settings -> what the pipelines of one process share, made once per project (None: nothing).
    shared: Callable[[Settings], Any] | None = None

    def __post_init__(self) -> None:
        names = [p.name for p in self.pipelines]
        if len(set(names)) != len(names):
            raise ConfigError(f"two pipelines share a name: {names}")

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self.pipelines)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.pipelines)

    def __getitem__(self, name: str) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        raise ConfigError(f"unknown pipeline '{name}' (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def defaults(self) -> list[str]:
        return [p.name for p in self.pipelines if p.default]

    def served(self) -> list[str]:
        return [p.name for p in self.pipelines if p.served]

    def setup(self, name: str) -> ModelSetup:
        for setup in self.model_setups:
            if setup.name == name:
                return setup
        known = " or ".join(s.name for s in self.model_setups)
        raise ConfigError(f"--provider is {known}, not '{name}'")


def load_sections(path: Path, pipelines: Pipelines) -> dict[str, Any]:
    """``pipelines.yaml`` read once: each registered pipeline's section parsed by its own parser.

    A missing file means every pipeline's defaults; a key no pipeline owns, or a bad value,
    fails at start naming the file and the key.
    """
    raw: Any = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the file must be a mapping")
    root = Section(path, "", raw)
    owners = {p.name for p in pipelines if p.parse is not None}
    root.known(owners)
    return {p.name: p.parse(root.child(p.name)) for p in pipelines if p.parse is not None}
