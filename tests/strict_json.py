"""Parse every ``*.json`` and ``*.jsonl`` file under a folder as strict parsers do (browsers, jq): no ``NaN``, no
``Infinity``. For the tests that check what the project writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unlearn.figures import NONFINITE, NONFINITE_VALUES, loads_strict


def strict_parse_tree(folder: Path) -> dict[Path, list[Any]]:
    """Every JSON file under ``folder`` -> its parsed values (one for ``.json``, one per line for ``.jsonl``).

    An AssertionError names the first file (and line) that a strict parser refuses."""
    parsed: dict[Path, list[Any]] = {}
    for path in sorted([*folder.rglob("*.json"), *folder.rglob("*.jsonl")]):
        text = path.read_text(encoding="utf-8")
        pieces = [text] if path.suffix == ".json" else [line for line in text.splitlines() if line.strip()]
        values = []
        for number, piece in enumerate(pieces, start=1):
            try:
                values.append(loads_strict(piece))
            except ValueError as exc:
                where = f"{path.relative_to(folder)}" + (f" line {number}" if path.suffix == ".jsonl" else "")
                raise AssertionError(f"{where} is not strict JSON: {exc}") from exc
        parsed[path] = values
    return parsed


def _reason_fields(value: Any, key: str = "") -> list[tuple[str, str]]:
    """``(key, reason)`` of every null written with a ``<key>_nonfinite`` reason in ``value``, at any depth."""
    found = []
    if isinstance(value, dict):
        for name, item in value.items():
            if name.endswith(NONFINITE) and value.get(name[: -len(NONFINITE)], 0) is None:
                reasons = item if isinstance(item, list) else [item]
                found += [(name[: -len(NONFINITE)], reason) for reason in reasons if reason in NONFINITE_VALUES]
            else:
                found += _reason_fields(item, name)
    elif isinstance(value, list):
        for item in value:
            found += _reason_fields(item, key)
    return found


def nonfinite_fields(parsed: dict[Path, list[Any]], folder: Path) -> list[tuple[str, str, str]]:
    """``(file relative to folder, key, reason)`` for each null written with a reason in the parsed files."""
    return [
        (str(path.relative_to(folder)), key, reason)
        for path, values in parsed.items()
        for value in values
        for key, reason in _reason_fields(value)
    ]
