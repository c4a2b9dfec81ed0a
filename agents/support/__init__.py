"""The support pipeline: classify -> retrieve -> generate -> screen, with its budget and cache."""

from agents.support.services import SupportConfig, SupportServices
from agents.support.stages import support_stages

__all__ = ["SupportConfig", "SupportServices", "support_stages"]
