"""models.yaml: validated at start with the key named; API keys from env or files, never leaked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.gateway.config import build_gateway, load_gateway_config
from agents.gateway.pricing import Usage
from agents.gateway.providers.protocol import ChatRequest
from agents.gateway.providers.simulator import SimConfig, SimulatorServer
from streams.errors import ConfigError
from streams.telemetry.otel import Telemetry

REPO = Path(__file__).resolve().parents[3]
PLANTED = "sk-planted-4f1c9e2a7b"


def test_the_repository_configurations_are_valid() -> None:
    offline = load_gateway_config(REPO / "models.yaml")
    assert [r.provider for r in offline.policy("generate").chain] == ["local"]
    assert [r.model for r in offline.policy("generate-direct").chain] == ["local-reply"]
    sim = load_gateway_config(REPO / "models.sim.yaml")
    policy = sim.policy("generate")
    assert [r.model for r in policy.chain] == [
        "sim-large",
        "sim-large",
        "sim-long",
        "sim-small",
        "local-extractive",
    ]
    assert policy.chain[2].context_window == 200_000 and policy.backoff.max_retries == 2
    assert policy.chain[0].min_budget_s == 1.5 and policy.chain[-1].provider == "local"
    assert sim.budgets.limit_for("umbrella") == 0.002 and sim.budgets.limit_for("acme-corp") == 0.05
    assert sim.budgets.limit_for(None) == 0.05 and offline.budgets.limit_for("umbrella") is None
    # Every stage that calls a model has a policy offline, ending in a local model in the sim.
    for stage in ("draft", "signals", "summarize"):
        assert offline.policy(stage).chain[-1].provider == "local"
        assert sim.policy(stage).chain[-1].provider == "local"
    with pytest.raises(ConfigError, match="no gateway policy for stage 'translate'"):
        sim.policy("translate")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers: {}\nprices: {}\nstages:\n  g: {chain: [{provider: x, model: m}]}\n", "no provider 'x'"),
        (
            "providers: {p: {kind: openai, base_url: u}}\nprices: {}\n"
            "stages:\n  g: {chain: [{provider: p, model: m}]}\n",
            "no price for 'm'",
        ),
        ("providers: {p: {kind: gemini, base_url: u}}\nprices: {}\nstages: {}\n", "providers.p.kind"),
        ("providers: {}\nprices: {m: {input: -1, output: 1}}\nstages: {}\n", "prices.m.input"),
        ("providers: {}\nprices: {}\nstages: {}\ncolour: red\n", "colour"),
        (
            "providers: {p: {kind: openai, base_url: u, api_key_env: OPENAI_SECRET}}\n"
            "prices: {}\nstages: {}\n",
            "providers.p: .*OPENAI_SECRET' does not end in _KEY or _TOKEN",
        ),
    ],
)
def test_a_bad_configuration_fails_at_start_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_gateway_config(path)
    assert str(path) in str(caught.value)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(SimConfig(latency_ms=1, jitter_ms=0))
    with server:
        yield server


async def test_a_planted_key_reaches_the_provider_header_and_no_log_or_span(
    tmp_path: Path, sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "anthropic.key"
    secret_file.write_text(PLANTED + "-file\n")
    path = tmp_path / "models.yaml"
    path.write_text(
        f"providers:\n  oa: {{kind: openai, base_url: '{sim.url}/v1', api_key_env: PLANTED_KEY}}\n"
        f"  an: {{kind: anthropic, base_url: '{sim.url}', api_key_file: '{secret_file}'}}\n"
        "prices: {m: {input: 1, output: 1}}\n"
        "stages:\n  g: {chain: [{provider: oa, model: m}, {provider: an, model: m}]}\n"
    )
    config = load_gateway_config(path)
    with pytest.raises(ConfigError, match="PLANTED_KEY is not set"):
        build_gateway(config, {})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    gateway = build_gateway(
        config, {"PLANTED_KEY": PLANTED}, telemetry=Telemetry(tracer_provider, MeterProvider())
    )
    caplog.set_level(logging.DEBUG)
    sim.queue("quota", None)  # the first provider fails over to the second: both keys are used
    result = await gateway.complete(
        ChatRequest(model="", messages=[{"role": "user", "content": "hi"}]), config.policy("g")
    )
    await gateway.aclose()
    await asyncio.sleep(0.05)  # let the loop finish closing the sockets before the session ends
    assert result.route.provider == "an"
    everything = (
        caplog.text + "".join(s.to_json() for s in spans.get_finished_spans()) + repr(gateway._providers)
    )
    assert PLANTED not in everything


def test_models_status_probes_every_route(tmp_path: Path, sim: SimulatorServer) -> None:
    from tests.streams.running import podium

    path = tmp_path / "models.yaml"
    path.write_text(
        f"providers:\n  oa: {{kind: openai, base_url: '{sim.url}/v1', api_key_env: PLANTED_KEY}}\n"
        "prices: {m: {input: 1, output: 2}, e: {input: 0.02, output: 0}}\nstages:\n"
        "  g: {chain: [{provider: oa, model: m}]}\n"
        "  embed: {operation: embeddings, chain: [{provider: oa, model: e}]}\n"
    )
    result = podium("models", "status", "--probe", env={"PODIUM_MODELS": str(path), "PLANTED_KEY": PLANTED})
    assert result.returncode == 0, result.stderr
    assert "$PLANTED_KEY" in result.stdout and PLANTED not in result.stdout
    assert "oa/m" in result.stdout and " ok " in result.stdout
    assert "(embeddings) oa/e" in result.stdout  # the chain, marked as an embeddings chain
    probed = [line for line in result.stdout.splitlines() if "oa/e" in line and " ok " in line]
    assert probed, result.stdout  # probed with an embeddings call, not a chat one


def test_routing_by_complexity_picks_the_cheapest_adequate_tier() -> None:
    sim = load_gateway_config(REPO / "models.sim.yaml")
    tier, simple = sim.routed_policy("generate", 0.1)
    assert tier == "simple" and simple.chain[0].model == "sim-small"
    tier, hard = sim.routed_policy("generate", 0.6)
    assert tier == "largest" and hard.chain[0].model == "sim-large" == sim.largest_model("generate")
    assert sim.routed_policy("generate-direct", 0.1)[0] == "largest"  # no tiers declared


def test_tiers_must_be_listed_cheapest_first(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "providers: {p: {kind: local}}\nprices: {m: {input: 0, output: 0}}\n"
        "stages:\n  g:\n    chain: [{provider: p, model: m}]\n    tiers:\n"
        "      - {name: b, max_score: 0.5, chain: [{provider: p, model: m}]}\n"
        "      - {name: a, max_score: 0.2, chain: [{provider: p, model: m}]}\n"
    )
    with pytest.raises(ConfigError, match="cheapest first"):
        load_gateway_config(path)


def test_the_repository_configurations_embed_with_one_model_each() -> None:
    offline = load_gateway_config(REPO / "models.yaml").policy("embed")
    assert offline.operation == "embeddings"
    assert [(r.provider, r.model) for r in offline.chain] == [("local", "local-wordllama")]
    sim = load_gateway_config(REPO / "models.sim.yaml")
    assert [(r.provider, r.model) for r in sim.policy("embed").chain] == [
        ("sim-openai", "text-embedding-3-small"),
        ("sim-openai-backup", "text-embedding-3-small"),
    ]
    assert sim.policy("generate").operation == "chat" and sim.policy("embed").dimensions == 256
    assert offline.dimensions is None
    assert sim.price_table().cost("text-embedding-3-small", Usage(1_000_000)) == 0.02


EMBED_HEAD = (
    "providers: {a: {kind: openai, base_url: u}, b: {kind: openai, base_url: v}, an: {kind: anthropic, "
    "base_url: w}, p: {kind: local}}\nprices: {e: {input: 0.02, output: 0}, f: {input: 0, output: 0}}\n"
)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (
            "{operation: embeddings, chain: [{provider: a, model: e}, {provider: p, model: f}]}",
            "stages.embed.chain.1.model: 'f' in an embeddings chain of 'e' .*do not share a space",
        ),
        (
            "{operation: embeddings, chain: [{provider: a, model: e}, {provider: an, model: e}]}",
            "stages.embed.chain.1.provider: 'an' is an anthropic provider, which has no embeddings API",
        ),
        (
            "{operation: embeddings, chain: [{provider: a, model: e}], "
            "tiers: [{name: t, max_score: 0.2, chain: [{provider: a, model: e}]}]}",
            "stages.embed.tiers: an embeddings policy has no tiers",
        ),
        ("{operation: rerank, chain: [{provider: a, model: e}]}", "stages.embed.operation"),
        (
            "{dimensions: 256, chain: [{provider: a, model: e}]}",
            "stages.embed.dimensions: only an embeddings",
        ),
    ],
)
def test_an_embeddings_policy_is_checked_at_load_naming_the_key(
    tmp_path: Path, stage: str, message: str
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(EMBED_HEAD + f"stages:\n  embed: {stage}\n")
    with pytest.raises(ConfigError, match=message):
        load_gateway_config(path)
    # Two providers of the same model are a valid fallback.
    path.write_text(
        EMBED_HEAD + "stages:\n  embed: {operation: embeddings, chain: "
        "[{provider: a, model: e}, {provider: b, model: e}]}\n"
    )
    assert len(load_gateway_config(path).policy("embed").chain) == 2


def test_budgets_give_a_tenant_day_and_month_windows_beside_the_per_request_caps() -> None:
    from agents.gateway.budget import Limits
    from agents.gateway.config import BudgetsConfig

    budgets = BudgetsConfig.model_validate(
        {
            "per_request_usd": 0.05,
            "per_month_usd": 30,
            "tenants": {
                "umbrella": 0.002,  # the form models.yaml had: a per-request cap
                "globex": {"per_day_usd": 2, "per_month_usd": 40},
                "initech": {"per_request_usd": 0.01},
            },
        }
    )
    assert budgets.limit_for("umbrella") == 0.002 and budgets.limit_for("globex") == 0.05
    assert budgets.limit_for("initech") == 0.01 and budgets.limit_for(None) == 0.05
    assert budgets.windows_for("globex") == Limits(2, 40)
    assert budgets.windows_for("umbrella") == Limits(None, 30)  # the default month applies
    # No tenant is the tenant "": the default windows apply to it too, as to any tenant name.
    assert budgets.windows_for(None) == budgets.windows_for("") == Limits(None, 30) and budgets.windowed
    assert BudgetsConfig.model_validate({"per_request_usd": 0.05}).windows_for(None) is None
    assert not BudgetsConfig.model_validate({"tenants": {"umbrella": 0.002}}).windowed
    assert BudgetsConfig().windows_for("globex") is None


def test_a_bad_budget_names_its_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "providers: {p: {kind: local}}\nprices: {m: {input: 0, output: 0}}\n"
        "stages:\n  g: {chain: [{provider: p, model: m}]}\n"
        "budgets: {tenants: {globex: {per_day_usd: -1}}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"models.yaml: budgets.tenants.globex.per_day_usd: Input should be greater than 0$"
    ):
        load_gateway_config(path)
    path.write_text(path.read_text().replace("per_day_usd: -1", "per_week_usd: 1"))
    with pytest.raises(ConfigError, match="per_week_usd"):
        load_gateway_config(path)
