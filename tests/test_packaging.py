"""The wheel ships every data file (agents/data, and a package's own such as agents/billing/data), and
building it prints no setuptools warnings.

The build runs in a copy of the sources so the checkout gets no build/ or egg-info folders; pip
builds with the setuptools of the dev extra, offline, in a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "streams", "agents")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel and pip's combined output."""
    tree = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(tree),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (wheel,) = out.glob("podium-*.whl")
    return wheel, output


def test_the_wheel_carries_every_data_file(built: tuple[Path, str]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # agents/data and each package's own data folder (agents/billing/data).
    data = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "agents").rglob("*")
        if p.is_file() and "data" in p.relative_to(REPO / "agents").parts[:-1]
    }
    assert "agents/billing/data/accounts.json" in data, "the billing sample is missing"
    assert data <= names, sorted(data - names)
    assert {"streams/py.typed", "agents/py.typed"} <= names
    assert not any("__pycache__" in name for name in names)


def test_building_prints_no_setuptools_warnings(built: tuple[Path, str]) -> None:
    _, output = built
    assert "Warning" not in output, output
