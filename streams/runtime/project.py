"""Everything a command needs, built once from :class:`~streams.config.Settings`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.contracts.catalog import Catalog, load_catalog
from streams.contracts.codec import Codec, ConfluentCodec, SingleObjectCodec
from streams.contracts.registry import SchemaRegistryClient
from streams.contracts.schemas import SchemaStore
from streams.errors import BrokerError, ConfigError
from streams.kafka.broker import BrokerState, LocalBroker
from streams.kafka.broker_security import SecurityMode
from streams.kafka.connection import Cluster, KafkaSecurity
from streams.kafka.principals import PODIUM, WORKER, stage_principal
from streams.runtime.pipeline import Build, Pipelines, load_sections
from streams.runtime.stage import Stage

__all__ = ["Project"]


@dataclass(frozen=True)
class Project:
    settings: Settings
    #: What the entry point registered (``agents`` registers its pipelines).
    pipelines: Pipelines = field(default_factory=Pipelines)

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

    def cluster(self, principal: str = PODIUM) -> Cluster:
        """The configured cluster with its security settings, else the running local broker as
        ``principal`` reaches it (secured or not: nothing to set); a clear error otherwise. Every
        Kafka client of a command is made from it. ``principal`` names a user of the local broker
        only (``podium``, or :func:`~streams.kafka.principals.stage_principal`); a configured
        cluster is reached as ``KAFKA_SASL_USERNAME``."""
        if self.settings.bootstrap_servers:
            return Cluster(self.settings.bootstrap_servers, KafkaSecurity.from_settings(self.settings))
        state = self.broker.running()
        if state is None:
            raise BrokerError(
                "no Kafka to talk to: start the local broker with `podium broker start`, "
                "or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
            )
        return Cluster(state.bootstrap, self.broker.client_security(principal))

    def as_worker(self) -> Cluster:
        """The cluster as a worker process's shared clients reach it (its stages' resources, its
        spans): ``podium-worker`` on the secured local broker, never the super user; on a
        configured cluster, the configured user."""
        return self.cluster(WORKER)

    def as_stage(self, stage_name: str) -> Cluster:
        """The cluster as a stage's own principal reaches it: on the secured local broker, the
        stage's SCRAM user (the ACLs of ``podium acls apply`` say what it may do); on a
        configured cluster, the configured user (one identity per process)."""
        return self.cluster(stage_principal(stage_name))

    def secured_locally(self) -> bool:
        """Is the cluster the local broker, started ``--security sasl_ssl``? (Then its ACLs are
        podium's to make; a configured cluster's are its operator's.)"""
        return not self.settings.bootstrap_servers and self.broker.recorded_security() == "sasl_ssl"

    def stage_principals(self) -> list[str]:
        """The SCRAM user of every stage of the registered pipelines (builds them, once)."""
        names = (stage.name for pipeline in self.pipelines.names() for stage in self.build(pipeline))
        return [stage_principal(name) for name in dict.fromkeys(names)]

    async def start_broker(
        self,
        security: SecurityMode | None = None,
        echo: Callable[[str], None] = print,
        timeout_s: float = 90.0,
    ) -> BrokerState:
        """Start the local broker; a secured one (``security``, else the mode of its last start)
        gets a SCRAM user for every stage of the registered pipelines and one for the workers'
        processes (``podium-worker``)."""
        mode = security or self.broker.recorded_security()
        users = [WORKER, *self.stage_principals()] if mode == "sasl_ssl" else []
        return await self.broker.start(timeout_s=timeout_s, echo=echo, security=mode, users=users)

    def with_models(self, provider: str) -> Project:
        """The project with the models of a registered ``--provider`` setup."""
        setup = self.pipelines.setup(provider)
        return self if setup.models_file is None else self.with_models_file(setup.models_file)

    def with_models_file(self, models: Path) -> Project:
        """The project with another models file (its pipelines built anew, with their own gateway)."""
        return replace(self, settings=self.settings.model_copy(update={"models_file": models}))

    @cached_property
    def shared(self) -> Any:
        """What the pipelines of this process share (podium's: one model gateway), made once."""
        return self.pipelines.shared(self.settings) if self.pipelines.shared is not None else None

    @cached_property
    def sections(self) -> dict[str, Any]:
        """Each pipeline's ``pipelines.yaml`` section, read once."""
        return load_sections(self.settings.pipelines_file, self.pipelines)

    @cached_property
    def _built(self) -> dict[tuple[str, bool], list[Stage[Any]]]:
        return {}

    def build(self, name: str, dry_run: bool = False) -> list[Stage[Any]]:
        """A registered pipeline's stages, built once per project: every command that asks for
        them gets the same stages, sharing the same resources."""
        if (name, dry_run) not in self._built:
            pipeline = self.pipelines[name]
            context = Build(self.settings, self.sections.get(name), self.shared, dry_run)
            # A window stage is not a Stage but runs beside them (worker_for picks its worker).
            self._built[name, dry_run] = list(pipeline.build(context))  # type: ignore[arg-type]
        return self._built[name, dry_run]

    def stages(self, targets: str | Sequence[str], dry_run: bool = False) -> list[Stage[Any]]:
        """Pipeline names, stages of one, or ``module:attribute`` (a Stage, a list, or a factory).

        Each pipeline is built once, so stages of one pipeline named together share its resources.
        """

        def pipeline(name: str) -> list[Stage[Any]]:
            return self.build(name, dry_run)

        chosen: list[Stage[Any]] = []
        for target in [targets] if isinstance(targets, str) else targets:
            found = self._resolve(target, pipeline)
            chosen += [s for s in found if all(s.name != c.name for c in chosen)]
        return chosen

    def built_pipelines_of(self, stages: Sequence[Stage[Any]]) -> set[str]:
        """The pipelines already built that ``stages`` belong to (nothing is built here)."""
        return {name for (name, _dry), built in self._built.items() if any(s in stages for s in built)}

    def pipeline_from(self, topic: str) -> list[Stage[Any]] | None:
        """The pipeline whose first stage consumes ``topic`` (None: no pipeline starts there)."""
        for name in self.pipelines.names():
            stages = self.build(name)
            if stages and stages[0].consumes == topic:
                return stages
        return None

    def _resolve(self, target: str, pipeline: Callable[[str], list[Stage[Any]]]) -> list[Stage[Any]]:
        if target in self.pipelines:
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
        for name in self.pipelines.names():
            stages = pipeline(name)
            known += [name, *(s.name for s in stages)]
            if any(s.name == target for s in stages):
                return [s for s in stages if s.name == target]
        raise ConfigError(
            f"unknown stage or pipeline '{target}' (known: {', '.join(known)}, or module:attribute)"
        )
