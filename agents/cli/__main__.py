"""``python -m agents.cli``: the ``podium`` command as installed."""

from agents.cli import main

main()
