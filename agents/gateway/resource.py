"""The one model gateway of a process, shared by every pipeline that runs in it.

A gateway holds each provider's client-side rate limiter and each route's circuit breaker, so
there must be one per process: ``podium up`` runs the support, content and market pipelines side
by side, and a gateway each would let three times a provider's limit through and keep three
opinions of one provider's health.

Where the pipelines are built (:data:`agents.PIPELINES`, called by
:attr:`streams.runtime.Project.shared`) one :class:`GatewayResource` is made from the settings
and handed to each pipeline's services. Its lifecycle is a reference count
(:class:`~streams.runtime.SharedResource`):

1. each pipeline's services open it when they open (the first one builds the gateway from the
   models file, so a bad file or a missing API key fails there, before anything else starts);
2. they close it when they close; the last one to close closes the providers' clients.

When a tenant has a day or month budget (``budgets`` in models.yaml), the resource opens the
process's :class:`~agents.gateway.ledger.BudgetLedger` with the gateway (one per process: it
follows the ledger's replies) and closes it after.

Circuit changes are heard by whoever :meth:`watches <GatewayResource.watch_circuits>` them
(the support services record them on ``podium.circuits``) for as long as they are open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from pydantic import SecretStr

from agents.gateway.config import GatewayConfig, build_gateway, load_gateway_config
from agents.gateway.gateway import ModelGateway
from agents.gateway.ledger import BudgetLedger
from agents.gateway.providers.local import LocalModels
from streams import ConfigError
from streams.runtime import SharedResource, StageEnv

__all__ = ["CircuitWatcher", "GatewayResource", "shared_or_own"]

# (provider, model, state): a route's circuit changed.
CircuitWatcher = Callable[[str, str, str], None]


class GatewayResource(SharedResource):
    """The gateway built from ``models`` (models.yaml), open while any of its users is open."""

    def __init__(
        self,
        models: Path,
        keys: Mapping[str, SecretStr] | None = None,
        local_models: LocalModels | None = None,
    ) -> None:
        """``keys``: the provider-key variables (:attr:`streams.config.Settings.provider_keys`);
        none by default, enough for the local models and keyless providers. ``local_models``:
        what the local provider serves, by model name (each pipeline registers its own)."""
        super().__init__()
        self.models = models
        self.local_models: LocalModels = MappingProxyType(dict(local_models or {}))
        self._keys: Mapping[str, SecretStr] = MappingProxyType(dict(keys or {}))
        self._config: GatewayConfig | None = None
        self._gateway: ModelGateway | None = None
        self._ledger: BudgetLedger | None = None
        self._watchers: list[CircuitWatcher] = []

    def __repr__(self) -> str:  # no keys, not even their names
        return f"GatewayResource(models={str(self.models)!r}, open={self._gateway is not None})"

    async def _open(self, env: StageEnv) -> None:
        config = load_gateway_config(self.models)
        ledger = None
        if config.budgets.windowed:
            ledger = BudgetLedger(env.cluster, env.catalog, env.codec, config.budgets)
            await ledger.__aenter__()
        try:
            self._gateway = build_gateway(
                config,
                self._keys,
                telemetry=env.telemetry,
                on_circuit=self._circuit_changed,
                local_models=self.local_models,
                ledger=ledger,
            )
        except BaseException:
            if ledger is not None:
                await ledger.__aexit__(None, None, None)
            raise
        self._config, self._ledger = config, ledger

    async def _close(self) -> None:
        gateway, self._gateway, self._config = self._gateway, None, None
        ledger, self._ledger = self._ledger, None
        try:
            if gateway is not None:
                await gateway.aclose()
        finally:
            if ledger is not None:
                await ledger.__aexit__(None, None, None)

    @property
    def gateway(self) -> ModelGateway:
        assert self._gateway is not None, "the model gateway is not open"
        return self._gateway

    @property
    def config(self) -> GatewayConfig:
        """The models file as it was read when the gateway opened."""
        assert self._config is not None, "the model gateway is not open"
        return self._config

    def watch_circuits(self, watcher: CircuitWatcher) -> Callable[[], None]:
        """Call ``watcher`` on every circuit change until the returned function is called."""
        self._watchers.append(watcher)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return unwatch

    def _circuit_changed(self, provider: str, model: str, state: str) -> None:
        for watcher in list(self._watchers):
            watcher(provider, model, state)


def shared_or_own(
    shared: GatewayResource | None,
    models: Path,
    local_models: LocalModels | None = None,
) -> GatewayResource:
    """The process's gateway when given (it must read the same models file and serve the
    caller's local models), else one of the caller's own over ``models`` with its local models,
    without API keys: a pipeline on its own (tests, benchmarks)."""
    if shared is None:
        return GatewayResource(models, local_models=local_models)
    if shared.models != models:
        raise ConfigError(f"the shared model gateway reads {shared.models}, not {models}")
    missing = sorted(set(local_models or {}) - set(shared.local_models))
    if missing:
        raise ConfigError(
            f"the shared model gateway serves no local model {', '.join(missing)}: register the "
            "pipeline's local models in agents.local_models() (agents/__init__.py)"
        )
    return shared
