"""``python -m streams.cli``: the runtime's commands alone, with no pipeline registered."""

from streams.cli import main

main()
