"""``models.yaml``: providers, prices and the call policy of each stage, read once and validated.

::

    providers:
      sim-openai: {kind: openai, base_url: http://127.0.0.1:8900/v1}
      openai: {kind: openai, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY,
               requests_per_minute: 500, tokens_per_minute: 200000}
      anthropic: {kind: anthropic, base_url: https://api.anthropic.com, api_key_file: /run/secrets/anthropic}
    prices:            # USD per million tokens
      gpt-4o-mini: {input: 0.15, output: 0.6, cached_input: 0.075}
    stages:
      generate:
        chain:
          - {provider: openai, model: gpt-4o-mini}
          - {provider: anthropic, model: claude-haiku, context_window: 200000}
        timeout_s: 20
        max_retries: 2
      embed:           # an embeddings policy: every route serves the same model (one vector space)
        operation: embeddings
        chain:
          - {provider: openai, model: text-embedding-3-small}
          - {provider: azure-openai, model: text-embedding-3-small}
    cache_ttl_s: 3600
    budgets:           # optional: what one request may spend on models, all stages together,
      per_request_usd: 0.02       # and what a tenant may spend per UTC day and month
      tenants:
        free-tier-co: 0.002       # a number: that tenant's per-request cap
        umbrella: {per_request_usd: 0.01, per_day_usd: 5, per_month_usd: 100}

API keys come from an environment variable or a secret file named here, never from the file
itself; they are held as ``SecretStr`` and only ever reach an HTTP header. The variables are
read once, with the rest of the settings (:attr:`streams.config.Settings.provider_keys`: the
``*_KEY`` variables), and handed to :func:`build_gateway`; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agents.gateway.backoff import Backoff
from agents.gateway.budget import Limits, SpendLedger
from agents.gateway.cache import ResponseCache
from agents.gateway.gateway import CallPolicy, ModelGateway, Route
from agents.gateway.pricing import Price, PriceTable
from agents.gateway.providers.http import AnthropicProvider, OpenAIProvider
from agents.gateway.providers.local import LocalModels, LocalProvider
from agents.gateway.providers.protocol import Provider
from agents.gateway.ratelimit import RateLimiter
from agents.gateway.tiers import choose_tier
from streams.config import PROVIDER_KEY_SUFFIXES
from streams.errors import ConfigError
from streams.telemetry import Telemetry

__all__ = [
    "BudgetsConfig",
    "GatewayConfig",
    "TenantBudget",
    "TierPolicy",
    "build_gateway",
    "load_gateway_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    # local: the offline models each pipeline registers (no base_url, no key, no cost).
    kind: Literal["openai", "anthropic", "local"]
    base_url: str = ""
    api_key_env: str | None = None
    api_key_file: Path | None = None
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _key_variable(self) -> ProviderConfig:
        if self.api_key_env is not None and not self.api_key_env.endswith(PROVIDER_KEY_SUFFIXES):
            raise ValueError(
                f"api_key_env: '{self.api_key_env}' does not end in {' or '.join(PROVIDER_KEY_SUFFIXES)} "
                "(podium's settings read provider keys from *_KEY and *_TOKEN variables only)"
            )
        return self


class RouteConfig(_Strict):
    provider: str
    model: str
    context_window: int = Field(default=8192, gt=0)
    min_budget_s: float = Field(default=0.0, ge=0)


class TierConfig(_Strict):
    """A cheaper chain for requests whose complexity score is at most ``max_score``."""

    name: str
    max_score: float = Field(ge=0, le=1)
    chain: list[RouteConfig] = Field(min_length=1)


class StagePolicy(_Strict):
    # chat: complete and stream; embeddings: embed (a chain of one model, no tiers).
    operation: Literal["chat", "embeddings"] = "chat"
    # embeddings: the vectors' length, asked of every route (OpenAI's ``dimensions``); a local
    # model must make exactly this many. None: the model's own.
    dimensions: int | None = Field(default=None, gt=0)
    chain: list[RouteConfig] = Field(min_length=1)
    # Routing by complexity (agents/gateway/tiers.py), cheapest first; a request above every
    # tier's max_score uses ``chain`` (the stage's largest model, the saving's yardstick).
    tiers: list[TierConfig] = Field(default_factory=list)
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_cap_s: float = Field(default=8.0, gt=0)


class PriceConfig(_Strict):
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class TenantBudget(_Strict):
    """One tenant's budgets: per request (all stages together) and per UTC day and month (held
    across replicas by the budget ledger, :mod:`agents.gateway.ledger`)."""

    per_request_usd: float | None = Field(default=None, gt=0)
    per_day_usd: float | None = Field(default=None, gt=0)
    per_month_usd: float | None = Field(default=None, gt=0)


class BudgetsConfig(_Strict):
    """What one request may spend on models, all stages together, and what a tenant may spend
    per UTC day and month; tenants may differ. A tenant given as a number is its per-request
    cap (the form models.yaml had before the day and month windows)."""

    per_request_usd: float | None = Field(default=None, gt=0)
    # Every tenant's windows unless the tenant names its own: each tenant name gets windows of
    # these amounts of its own (not one window shared by all), and so do requests without a
    # tenant, together, as the tenant "" (else they would spend past every window).
    per_day_usd: float | None = Field(default=None, gt=0)
    per_month_usd: float | None = Field(default=None, gt=0)
    tenants: dict[str, TenantBudget] = Field(default_factory=dict)
    # How long a model call waits for the ledger's answer to its reservation (bounded by the
    # call's own deadline): the ledger's owner may be taking over from one that died, which
    # takes the group's session timeout (10 s). No answer: the call is not made.
    ledger_timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("tenants", mode="before")
    @classmethod
    def _a_number_is_a_per_request_cap(cls, tenants: Any) -> Any:
        if not isinstance(tenants, dict):
            return tenants
        return {
            name: {"per_request_usd": value}
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value
            for name, value in tenants.items()
        }

    def limit_for(self, tenant: str | None) -> float | None:
        own = self.tenants.get(tenant) if tenant is not None else None
        if own is not None and own.per_request_usd is not None:
            return own.per_request_usd
        return self.per_request_usd

    def windows_for(self, tenant: str | None) -> Limits | None:
        """The tenant's day and month limits, or None when neither applies (no reservation).
        No tenant (None or "") is the tenant "": the default windows apply to it too."""
        own = self.tenants.get(tenant or "")
        day, month = self.per_day_usd, self.per_month_usd
        if own is not None:
            day = own.per_day_usd if own.per_day_usd is not None else day
            month = own.per_month_usd if own.per_month_usd is not None else month
        if day is None and month is None:
            return None
        return Limits(day, month)

    @property
    def windowed(self) -> bool:
        """Whether any tenant has a day or month window (so the gateway needs the ledger)."""
        return (
            self.per_day_usd is not None
            or self.per_month_usd is not None
            or any(t.per_day_usd is not None or t.per_month_usd is not None for t in self.tenants.values())
        )


@dataclass(frozen=True)
class TierPolicy:
    """A tier of a stage: requests up to ``max_score`` complexity call ``policy``."""

    name: str
    max_score: float
    policy: CallPolicy


class GatewayConfig(_Strict):
    providers: dict[str, ProviderConfig]
    prices: dict[str, PriceConfig]
    stages: dict[str, StagePolicy]
    cache_ttl_s: float | None = Field(default=None, gt=0)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        for name, p in self.providers.items():
            if p.kind != "local" and not p.base_url:
                raise ValueError(f"providers.{name}.base_url: required for a {p.kind} provider")
        for stage, policy in self.stages.items():
            chains = [(f"stages.{stage}.chain", policy.chain)] + [
                (f"stages.{stage}.tiers.{t}.chain", tier.chain) for t, tier in enumerate(policy.tiers)
            ]
            for where, chain in chains:
                for i, route in enumerate(chain):
                    if route.provider not in self.providers:
                        raise ValueError(f"{where}.{i}.provider: no provider '{route.provider}'")
                    if route.model not in self.prices:
                        raise ValueError(
                            f"{where}.{i}.model: no price for '{route.model}' "
                            "(a model without a price would be counted as free)"
                        )
            if policy.operation == "embeddings":
                self._check_embeddings(stage, policy)
            elif policy.dimensions is not None:
                raise ValueError(f"stages.{stage}.dimensions: only an embeddings policy has dimensions")
            scores = [t.max_score for t in policy.tiers]
            if scores != sorted(scores):
                raise ValueError(f"stages.{stage}.tiers: list them cheapest first, by rising max_score")
        return self

    def _check_embeddings(self, stage: str, policy: StagePolicy) -> None:
        """Vectors of two models do not share a space, so a fallback must stay on the model;
        Anthropic has no embeddings API; a tier is a cheaper model, so none either."""
        where = f"stages.{stage}"
        if policy.tiers:
            raise ValueError(f"{where}.tiers: an embeddings policy has no tiers (one model embeds)")
        model = policy.chain[0].model
        for i, route in enumerate(policy.chain):
            if route.model != model:
                raise ValueError(
                    f"{where}.chain.{i}.model: '{route.model}' in an embeddings chain of '{model}' "
                    "(vectors of two models do not share a space: every route names the same model)"
                )
            if self.providers[route.provider].kind == "anthropic":
                raise ValueError(
                    f"{where}.chain.{i}.provider: '{route.provider}' is an anthropic provider, "
                    "which has no embeddings API"
                )

    def policy(self, stage: str) -> CallPolicy:
        try:
            p = self.stages[stage]
        except KeyError:
            raise ConfigError(
                f"no gateway policy for stage '{stage}' (known: {', '.join(self.stages)})"
            ) from None
        return self._call_policy(p, p.chain)

    def tier_policies(self, stage: str) -> list[TierPolicy]:
        """The stage's tiers, cheapest first, ending with ``largest`` (the stage's own chain,
        adequate for any score). Built once at start; pick with ``routing.choose_tier``."""
        p = self.stages.get(stage)
        if p is None:
            return [TierPolicy("largest", 1.0, self.policy(stage))]
        tiers = [TierPolicy(t.name, t.max_score, self._call_policy(p, t.chain)) for t in p.tiers]
        return [*tiers, TierPolicy("largest", 1.0, self._call_policy(p, p.chain))]

    def routed_policy(self, stage: str, score: float) -> tuple[str, CallPolicy]:
        """(tier name, policy) for a request of complexity ``score``."""
        chosen = choose_tier(score, self.tier_policies(stage))
        return chosen.name, chosen.policy

    def largest_model(self, stage: str) -> str:
        return self.stages[stage].chain[0].model

    @staticmethod
    def _call_policy(p: StagePolicy, chain: list[RouteConfig]) -> CallPolicy:
        return CallPolicy(
            chain=tuple(Route(r.provider, r.model, r.context_window, r.min_budget_s) for r in chain),
            backoff=Backoff(p.backoff_base_s, p.backoff_cap_s, p.max_retries),
            timeout_s=p.timeout_s,
            operation=p.operation,
            dimensions=p.dimensions,
        )

    def price_table(self) -> PriceTable:
        return PriceTable({m: Price(p.input, p.output, p.cached_input) for m, p in self.prices.items()})

    def limiters(self) -> dict[str, RateLimiter]:
        return {
            name: RateLimiter(p.requests_per_minute, p.tokens_per_minute)
            for name, p in self.providers.items()
            if p.requests_per_minute or p.tokens_per_minute
        }

    def api_key(self, provider: str, keys: Mapping[str, SecretStr | str]) -> SecretStr:
        """``keys``: the provider-key variables, as :attr:`Settings.provider_keys` read them."""
        p = self.providers[provider]
        if p.api_key_env:
            if p.api_key_env not in keys:
                raise ConfigError(f"provider {provider}: environment variable {p.api_key_env} is not set")
            key = keys[p.api_key_env]
            return key if isinstance(key, SecretStr) else SecretStr(key)
        if p.api_key_file:
            try:
                return SecretStr(p.api_key_file.read_text().strip())
            except OSError as exc:
                raise ConfigError(
                    f"provider {provider}: cannot read {p.api_key_file} ({exc.strerror})"
                ) from exc
        return SecretStr("")


def load_gateway_config(path: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the model gateway configuration: {exc}") from exc
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def build_gateway(
    config: GatewayConfig,
    keys: Mapping[str, SecretStr | str],
    *,
    telemetry: Telemetry | None = None,
    cache: ResponseCache | None = None,
    on_circuit: Callable[[str, str, str], None] | None = None,
    local_models: LocalModels | None = None,
    ledger: SpendLedger | None = None,
) -> ModelGateway:
    """Providers (one pooled client each, keys from ``keys`` or secret files), limits, prices.

    ``local_models``: what a ``kind: local`` provider serves, by model name (each pipeline
    registers its own, and the offline embedders are there too; see
    :mod:`agents.gateway.providers.local`). ``ledger``: where the calls of tenants with a day or
    month budget reserve (:class:`agents.gateway.ledger.BudgetLedger`, opened by the caller).

    A process builds one (see :class:`agents.gateway.resource.GatewayResource`): each gateway
    has its own rate limiters and circuits, so two would let twice a provider's limit through.
    """
    # Every key first: a missing one fails before any client (and its pool) exists.
    secrets = {name: config.api_key(name, keys) for name, p in config.providers.items() if p.kind != "local"}
    providers: dict[str, Provider] = {}
    for name, p in config.providers.items():
        if p.kind == "local":
            providers[name] = LocalProvider(name, local_models)
            continue
        kind = OpenAIProvider if p.kind == "openai" else AnthropicProvider
        providers[name] = kind(name, p.base_url, api_key=secrets[name].get_secret_value())
    return ModelGateway(
        providers,
        config.price_table(),
        limits=config.limiters(),
        telemetry=telemetry,
        cache=cache,
        on_circuit=on_circuit,
        ledger=ledger,
    )
