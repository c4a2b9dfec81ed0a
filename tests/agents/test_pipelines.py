from pathlib import Path

import pytest

from agents import PIPELINES
from agents.content.review import Thresholds
from agents.kb.config import KbTuning
from agents.market.stages import MarketConfig
from streams.errors import ConfigError
from streams.runtime import load_sections
from tests.streams.running import REPO

DEFAULTS = {"content": Thresholds(), "market": MarketConfig(), "kb": KbTuning()}


def test_the_shipped_file_states_the_defaults_and_a_missing_file_means_them(tmp_path: Path) -> None:
    assert load_sections(REPO / "pipelines.yaml", PIPELINES) == DEFAULTS
    assert load_sections(tmp_path / "absent.yaml", PIPELINES) == DEFAULTS


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "content: {thresholds: {style: 0.5}, max_revisions: 4}\nmarket: {window_s: 60, grace_s: 2}\n"
    )
    sections = load_sections(path, PIPELINES)
    content, market = sections["content"], sections["market"]
    assert (content.style, content.factcheck, content.max_revisions) == (0.5, 0.7, 4)
    assert (market.window_s, market.grace_s, market.points) == (60.0, 2.0, 60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("content: {thresholds: {tone: 0.5}}", "unknown key content.thresholds.tone"),
        ("markets: {}", "unknown key markets"),
        ("content: {thresholds: {style: 1.5}}", "within 0..1"),
        ("market: {window_s: 60, points: 7}", "must divide into 7 points"),
        ("content: [1, 2]", "content must be a mapping"),
        ("content: {max_revisions: many}", "p.yaml"),
    ],
)
def test_a_bad_file_fails_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sections(path, PIPELINES)


def test_every_pipeline_with_a_demo_is_started_by_default_and_the_runtime_demo_is_not() -> None:
    assert PIPELINES.names() == ["demo", "kb", "support", "content", "market", "billing", "budgets"]
    # The budget ledger has no demo, and runs beside the pipelines whose calls reserve against it.
    assert PIPELINES.defaults() == ["kb", "support", "content", "market", "billing", "budgets"]
    assert PIPELINES.served() == ["support", "billing"]
    assert [s.name for s in PIPELINES.model_setups] == ["local", "sim"]


def test_agents_public_names_are_a_decision() -> None:
    import agents

    assert sorted(agents.__all__) == ["PIPELINES", "local_models", "process_gateway"]
