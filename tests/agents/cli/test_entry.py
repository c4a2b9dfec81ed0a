"""The podium entry point registers every pipeline without loading any pipeline's models."""

import subprocess
import sys

HEAVY = ("sklearn", "bm25s", "fastapi", "uvicorn", "feedparser", "websockets", "faust", "mcp", "bs4", "pypdf")


def test_the_entry_point_loads_no_model_server_or_feed_library_until_a_command_needs_one() -> None:
    probe = (
        "import sys, agents.cli; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules)); "
        "print(' '.join(agents.cli.PIPELINES.names()))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, names = out.stdout.splitlines()
    assert loaded == ""
    assert names.split() == ["demo", "kb", "support", "content", "market", "billing", "budgets"]
