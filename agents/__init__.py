"""podium's pipelines, registered with the runtime.

Each pipeline package declares one :class:`streams.runtime.Pipeline` (how to build its stages
from the settings, its section of ``pipelines.yaml``, its demo); :data:`PIPELINES` is the
registry the ``podium`` entry point (:mod:`agents.cli`) hands to the runtime, with the model
setups ``--provider`` chooses between and what the pipelines of one process share: one model
gateway, so a provider's rate limit and each route's circuit belong to the process.

Declaring the registry imports no pipeline's stages, models or demos (they are imported when a
pipeline is built), so a command that needs none of them starts quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agents.billing.pipeline import BILLING
from agents.budgets.pipeline import BUDGETS
from agents.content.pipeline import CONTENT
from agents.kb.pipeline import KB
from agents.market.pipeline import MARKET
from agents.passthrough import DEMO
from agents.support.pipeline import SUPPORT
from streams import ConfigError, Settings
from streams.runtime import ModelSetup, Pipelines

if TYPE_CHECKING:
    from rich.console import Console

    from agents.gateway.providers.local import LocalEmbedder, LocalModel, ToolModel
    from agents.gateway.resource import GatewayResource

__all__ = ["PIPELINES", "local_models", "process_gateway"]


def local_models() -> dict[str, LocalModel | ToolModel | LocalEmbedder]:
    """What the local provider serves: every pipeline's local models and the offline embedding
    models (``local-wordllama``, loaded on first use), by model name."""
    from agents.billing.planner import PLANNER_MODELS
    from agents.content.writer import WRITER_MODELS
    from agents.market.prompts import MARKET_MODELS
    from agents.offline.embedder import EMBEDDING_MODELS
    from agents.offline.grounded import GROUNDED_MODELS

    joined: dict[str, LocalModel | ToolModel | LocalEmbedder] = {}
    for models in (GROUNDED_MODELS, WRITER_MODELS, MARKET_MODELS, PLANNER_MODELS, EMBEDDING_MODELS):
        clash = sorted(set(joined) & set(models))
        if clash:
            raise ConfigError(f"two pipelines register the local model {clash[0]}")
        joined.update(models)
    return joined


def process_gateway(settings: Settings) -> GatewayResource:
    """The one model gateway of a process's pipelines: ``models.yaml``, the provider keys from
    the settings and every pipeline's local models."""
    from agents.gateway.resource import GatewayResource

    return GatewayResource(settings.models_file, settings.provider_keys, local_models())


@contextmanager
def _simulator(console: Console) -> Iterator[None]:
    from agents.gateway.providers.simulator import demo_simulator

    with demo_simulator(console):
        yield


PIPELINES = Pipelines(
    (DEMO, KB, SUPPORT, CONTENT, MARKET, BILLING, BUDGETS),
    model_setups=(
        ModelSetup("local", "the offline local models (models.yaml)"),
        ModelSetup(
            "sim",
            "the provider simulator with injected faults (models.sim.yaml), to watch retries and fallbacks",
            models_file=Path("models.sim.yaml"),
            start=_simulator,
        ),
    ),
    shared=process_gateway,
)
