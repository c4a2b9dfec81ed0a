"""podium's pipelines, registered with the runtime.

Each pipeline package declares one :class:`streams.runtime.Pipeline` (how to build its stages
from the settings, its section of ``pipelines.yaml``, its demo); :data:`PIPELINES` is the
registry the ``podium`` entry point (:mod:`agents.cli`) hands to the runtime, with the model
setups ``--provider`` chooses between.
"""

from functools import partial
from pathlib import Path

from agents.content.pipeline import CONTENT
from agents.content.writer import WRITER_MODELS
from agents.gateway.resource import GatewayResource
from agents.market.pipeline import MARKET
from agents.market.prompts import MARKET_MODELS
from agents.offline.grounded import GROUNDED_MODELS
from agents.passthrough import DEMO
from agents.support.demo import simulator
from agents.support.pipeline import SUPPORT
from streams import Settings
from streams.runtime import ModelSetup, Pipelines

__all__ = ["LOCAL_MODELS", "PIPELINES", "process_gateway"]

# What the local provider serves: each pipeline's local models, by model name.
LOCAL_MODELS = {**GROUNDED_MODELS, **WRITER_MODELS, **MARKET_MODELS}


def process_gateway(settings: Settings) -> GatewayResource:
    """The one model gateway of a process's pipelines: ``models.yaml`` and the provider keys from
    the settings. A provider's rate limit and each route's circuit belong to the process, however
    many pipelines call them."""
    return GatewayResource(settings.models_file, settings.provider_keys, LOCAL_MODELS)


PIPELINES = Pipelines(
    (DEMO, SUPPORT, CONTENT, MARKET),
    model_setups=(
        ModelSetup("local", "the offline local models (models.yaml)"),
        ModelSetup(
            "sim",
            "the provider simulator with injected faults (models.sim.yaml), to watch retries and fallbacks",
            models_file=Path("models.sim.yaml"),
            start=partial(simulator, "sim"),
        ),
    ),
    shared=process_gateway,
)
