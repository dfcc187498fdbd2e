"""The one exception type the library raises for bad user input, and the scripts' wrapper that shows it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(Exception):
    """Bad input from the user: scripts print it as ``error: <message>`` and exit with code 2."""


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit code 2."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
