"""Everything a command needs, built once from :class:`~streams.config.Settings`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from streams.broker import LocalBroker
from streams.catalog import Catalog, load_catalog
from streams.codec import Codec, ConfluentCodec, SingleObjectCodec
from streams.config import Settings
from streams.errors import BrokerError, ConfigError
from streams.registry import SchemaRegistryClient
from streams.schemas import SchemaStore
from streams.stage import Stage

__all__ = ["Project", "pipeline_from", "resolve_stages"]


@dataclass(frozen=True)
class Project:
    settings: Settings

    @cached_property
    def schemas(self) -> SchemaStore:
        return SchemaStore.load(self.settings.schemas_dir)

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.topics_file, self.schemas.names())

    @cached_property
    def codec(self) -> Codec:
        if self.settings.schema_registry_url:
            return ConfluentCodec(self.schemas, SchemaRegistryClient(self.settings.schema_registry_url))
        return SingleObjectCodec(self.schemas)

    @cached_property
    def broker(self) -> LocalBroker:
        return LocalBroker(self.settings)

    def bootstrap(self) -> str:
        """The configured cluster, else the running local broker; a clear error otherwise."""
        if self.settings.bootstrap_servers:
            return self.settings.bootstrap_servers
        state = self.broker.running()
        if state is None:
            raise BrokerError(
                "no Kafka to talk to: start the local broker with `podium broker start`, "
                "or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
            )
        return state.bootstrap


def resolve_stages(
    targets: str | Sequence[str], settings: Settings, dry_run: bool = False
) -> list[Stage[Any]]:
    """Pipeline names, stages of one, or ``module:attribute`` (a Stage, a list, or a factory).

    Each pipeline is built once, so stages of one pipeline named together share its resources.
    """
    from agents import PIPELINES

    built: dict[str, list[Stage[Any]]] = {}

    def pipeline(name: str) -> list[Stage[Any]]:
        if name not in built:
            built[name] = PIPELINES[name](settings, dry_run)
        return built[name]

    chosen: list[Stage[Any]] = []
    for target in [targets] if isinstance(targets, str) else targets:
        found = _resolve(target, pipeline)
        chosen += [s for s in found if all(s.name != c.name for c in chosen)]
    return chosen


def pipeline_from(topic: str, settings: Settings) -> list[Stage[Any]] | None:
    """The pipeline whose first stage consumes ``topic`` (None: no pipeline starts there)."""
    from agents import PIPELINES

    for build in PIPELINES.values():
        stages = build(settings, False)
        if stages and stages[0].consumes == topic:
            return stages
    return None


def _resolve(target: str, pipeline: Callable[[str], list[Stage[Any]]]) -> list[Stage[Any]]:
    from agents import PIPELINES

    if target in PIPELINES:
        return pipeline(target)
    if ":" in target:
        module_name, _, attribute = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load stage '{target}': {exc}") from exc
        if callable(found) and not isinstance(found, Stage):
            found = found()
        stages = [found] if isinstance(found, Stage) else list(found)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise ConfigError(f"'{target}' is not a Stage or a list of stages")
        return stages
    known: list[str] = []
    for name in PIPELINES:
        stages = pipeline(name)
        known += [name, *(s.name for s in stages)]
        if any(s.name == target for s in stages):
            return [s for s in stages if s.name == target]
    raise ConfigError(
        f"unknown stage or pipeline '{target}' (known: {', '.join(known)}, or module:attribute)"
    )
