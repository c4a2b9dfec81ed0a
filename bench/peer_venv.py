"""A virtual environment of the bench's own for a peer library podium does not depend on.

quixstreams and LiteLLM are measured against podium, not used by it: each is installed into
``PODIUM_HOME/bench-venvs/<name>`` (from the package registry, once) and its case runs there in
a process of its own, so neither reaches podium's dependency tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["peer_python"]


def _home() -> Path:
    return Path(os.environ.get("PODIUM_HOME", Path(__file__).resolve().parent.parent / ".podium"))


def peer_python(name: str, requirements: list[str]) -> Path:
    """The interpreter of the venv ``name`` holding ``requirements`` (made and filled if needed)."""
    root = _home() / "bench-venvs" / name
    python = root / "bin" / "python"
    stamp = root / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"bench: installing {' '.join(requirements)} into {root} (once)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
    )
    stamp.write_text(wanted)
    return python
