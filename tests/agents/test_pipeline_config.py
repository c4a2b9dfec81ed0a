from pathlib import Path

import pytest

from agents.pipeline_config import PipelineConfig, load_pipeline_config
from streams.errors import ConfigError
from tests.streams.running import REPO


def test_the_shipped_file_states_the_defaults_and_a_missing_file_means_them(tmp_path: Path) -> None:
    assert load_pipeline_config(REPO / "pipelines.yaml") == PipelineConfig()
    assert load_pipeline_config(tmp_path / "absent.yaml") == PipelineConfig()


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "content: {thresholds: {style: 0.5}, max_revisions: 4}\nmarket: {window_s: 60, grace_s: 2}\n"
    )
    config = load_pipeline_config(path)
    assert (config.content.style, config.content.factcheck, config.content.max_revisions) == (0.5, 0.7, 4)
    assert (config.market.window_s, config.market.grace_s, config.market.points) == (60.0, 2.0, 60)


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
        load_pipeline_config(path)
