"""Token usage and what it costs: one price table, cost per call, summed per request."""

from __future__ import annotations

from dataclasses import dataclass

from streams.errors import ConfigError

__all__ = ["Price", "PriceTable", "Usage"]


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # excluding cache reads
    output_tokens: int = 0
    cache_read_tokens: int = 0
    estimated: bool = False  # counted from what arrived (a cut stream), not reported by the provider


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = self.input if self.cached_input is None else self.cached_input
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * cached
        ) / 1_000_000


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = dict(prices)

    def cost(self, model: str, usage: Usage, *, cache_hit: bool = False) -> float:
        """A cache hit costs nothing; a model without a price is a configuration error, not $0."""
        if cache_hit:
            return 0.0
        try:
            return self._prices[model].cost(usage)
        except KeyError:
            raise ConfigError(
                f"no price for model '{model}': add it to the price table (a missing price is not free)"
            ) from None
