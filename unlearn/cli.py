"""Shared behaviour of the command-line scripts: one-line errors with exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from unlearn.errors import UsageError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit code 2."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
