"""The import-linter contracts in pyproject.toml hold, and a wrong-way import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    for package in ("streams", "agents"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _broken_by(tmp_path: Path, module: str, imported: str) -> str:
    """Lint a copy of the tree in which ``module`` (a path under the root) also imports ``imported``."""
    root = _copy(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\nimport {imported}  # noqa: E402\n")
    result = _lint(root)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


def test_the_runtime_importing_a_pipeline_breaks_the_layers(tmp_path: Path) -> None:
    out = _broken_by(tmp_path, "streams/contracts/catalog.py", "agents.support")
    assert "The runtime never imports the pipelines BROKEN" in out
    assert "streams.contracts.catalog -> agents.support" in out


def test_a_lower_floor_importing_a_higher_one_breaks_the_floors(tmp_path: Path) -> None:
    out = _broken_by(tmp_path, "streams/contracts/codec.py", "streams.runtime.stage")
    assert "each imports only the floors below it BROKEN" in out


def test_a_pipeline_reaching_past_a_face_breaks_the_faces(tmp_path: Path) -> None:
    out = _broken_by(tmp_path, "agents/support/stages.py", "streams.runtime.stage_worker")
    assert "agents.support.stages -> streams.runtime.stage_worker" in out


def test_one_pipeline_importing_another_breaks_their_independence(tmp_path: Path) -> None:
    out = _broken_by(tmp_path, "agents/content/seo.py", "agents.support.routing")
    assert "which never import each other" in out and "BROKEN" in out
    assert "agents.content.seo -> agents.support.routing" in out


def test_the_agent_loop_importing_a_pipeline_breaks_the_layers(tmp_path: Path) -> None:
    out = _broken_by(tmp_path, "agents/loop/tools.py", "agents.support.routing")
    assert "agents.loop is not allowed to import agents.support" in out
    assert "agents.loop.tools -> agents.support.routing" in out


def test_a_new_package_outside_the_declared_layers_breaks_them_until_it_is_placed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "agents" / "digest").mkdir()
    (root / "agents" / "digest" / "__init__.py").write_text('"""A new pipeline nobody placed."""\n')
    result = _lint(root)
    assert result.returncode == 1
    assert "agents.digest" in result.stdout
