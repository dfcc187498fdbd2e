"""The one exception type the library raises for bad user input."""


class UsageError(Exception):
    """Bad input from the user: scripts print it as ``error: <message>`` and exit with code 2."""
