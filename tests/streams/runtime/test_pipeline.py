from pathlib import Path

import pytest

from streams.config import Settings
from streams.errors import ConfigError
from streams.runtime.pipeline import Build, ModelSetup, Pipeline, Pipelines, Section, load_sections
from streams.runtime.project import Project
from streams.runtime.stage import Emit, Stage


async def _echo(value: dict[str, object], _ctx: object) -> Emit:
    return Emit("out", value)


def _stages(build: Build) -> list[Stage[dict[str, object]]]:
    name = f"echo-{build.section}" + ("-dry" if build.dry_run else "")
    return [Stage(name=name, consumes="in", produces=("out",), handler=_echo)]


def _parse(section: Section) -> int:
    section.known({"size"})
    return int(section.values.get("size", 1))


ECHO = Pipeline(name="echo", summary="echo", build=_stages, parse=_parse)


def test_a_project_builds_a_registered_pipeline_with_its_own_section(tmp_path: Path) -> None:
    (tmp_path / "pipelines.yaml").write_text("echo: {size: 3}\n")
    settings = Settings(PODIUM_PIPELINES=tmp_path / "pipelines.yaml")
    project = Project(settings, Pipelines((ECHO,)))
    assert [s.name for s in project.stages("echo")] == ["echo-3"]
    assert [s.name for s in project.stages(["echo-3"], dry_run=False)] == ["echo-3"]
    assert [s.name for s in project.stages("echo", dry_run=True)] == ["echo-3-dry"]
    assert project.pipeline_from("in") is not None and project.pipeline_from("out") is None


def test_the_bare_runtime_knows_no_pipeline_and_says_what_it_knows() -> None:
    with pytest.raises(ConfigError, match="unknown stage or pipeline 'support'"):
        Project(Settings()).stages("support")


def test_a_section_no_pipeline_owns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("echo: {}\nsupport: {}\n")
    with pytest.raises(ConfigError, match="unknown key support"):
        load_sections(path, Pipelines((ECHO,)))
    path.write_text("echo: {sise: 2}\n")
    with pytest.raises(ConfigError, match=r"p.yaml: unknown key echo.sise \(known: size\)"):
        load_sections(path, Pipelines((ECHO,)))


def test_two_pipelines_may_not_share_a_name_and_an_unknown_provider_names_the_known() -> None:
    with pytest.raises(ConfigError, match="share a name"):
        Pipelines((ECHO, ECHO))
    pipelines = Pipelines((ECHO,), model_setups=(ModelSetup("local", "x"), ModelSetup("sim", "y")))
    with pytest.raises(ConfigError, match="--provider is local or sim, not 'cloud'"):
        pipelines.setup("cloud")
    project = Project(Settings(), Pipelines((ECHO,), (ModelSetup("sim", "y", models_file=Path("m.yaml")),)))
    assert project.with_models("sim").settings.models_file == Path("m.yaml")
