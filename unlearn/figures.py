"""The one definition of each headline figure: its ``summary.json`` key, label, meaning and direction.

The evaluator writes these keys into ``summary.json``; the report, the model card and the app read their labels and
meanings from here. The Hub and app side read the figures' values from ``summary.json`` files, never from ``eval/``.

Every JSON and JSONL file the project writes is strict JSON, which any parser reads: :func:`dumps_strict` (and
:func:`write_json_strict`, :func:`jsonl_strict`) write a non-finite number (a truth ratio that overflowed) as
``null`` with a sibling field ``<key>_nonfinite`` saying which it was (``"inf"``, ``"-inf"`` or ``"nan"``), and
refuse (``allow_nan=False``) anything else that would print ``NaN`` or ``Infinity``. :func:`restored` reads such a
value back as the float it was; :func:`loads_strict` parses and raises on ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BETTER = ("higher", "lower", "closer to gold")


@dataclass(frozen=True)
class Figure:
    """A headline figure: ``key`` in ``summary.json``, ``label`` shown everywhere, a one-line ``meaning``, and which
    values are better (``BETTER``: higher, lower, or closer to the gold model's)."""

    key: str
    label: str
    meaning: str
    better: str

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}, got {self.better!r}")

    @property
    def direction(self) -> str:
        """``higher is better``, ``lower is better`` or ``closer to gold is better``."""
        return f"{self.better} is better"

    def described(self) -> str:
        """``meaning (direction)``: the text under the label on the card, the report and the app."""
        return f"{self.meaning} ({self.direction})"


FIGURES: tuple[Figure, ...] = (
    Figure("real", "Real", "CLEAR's score on real-world faces and questions, which the base model knew", "higher"),
    Figure("retain", "Retain", "CLEAR's score on the retained persons' captions and faces", "higher"),
    Figure(
        "forget",
        "Forget",
        "CLEAR's score on the forgotten persons' captions and faces: probability of the true answers (high while "
        "they are known) with the truth-ratio figure (high when true and perturbed answers look alike); a model "
        "that never saw these persons sets the target",
        "closer to gold",
    ),
    Figure(
        "forget_quality_ks",
        "Forget quality (KS p)",
        "p-value of a KS test between this model's and the gold model's truth ratios on the forget captions; "
        "higher means closer to a model that never saw these persons",
        "higher",
    ),
    Figure(
        "forget_quality_js",
        "Forget quality (1-JS)",
        "1 - Jensen-Shannon divergence between the same two truth-ratio distributions; higher means closer",
        "higher",
    ),
    Figure(
        "model_utility",
        "Model utility",
        "CLEAR's combined score (ROUGE-L, probability, truth ratio) on the retained persons and the real world",
        "higher",
    ),
)
HEADLINE: dict[str, Figure] = {figure.key: figure for figure in FIGURES}


def is_task_figure(name: str, value: Any) -> bool:
    """An entry of a task in ``summary.json`` that is a figure: a number, not an interval (``<figure>_ci``, a list)
    and not the task's ``samples`` count."""
    return name != "samples" and isinstance(value, int | float) and not isinstance(value, bool)


NONFINITE = "_nonfinite"  # suffix of the field that says why its sibling is null: "inf", "-inf" or "nan"
NONFINITE_VALUES = ("inf", "-inf", "nan")


def nonfinite_reason(value: Any) -> str | None:
    """``"inf"``, ``"-inf"`` or ``"nan"`` for a non-finite real number (a Python or NumPy float); None otherwise."""
    if not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral) or math.isfinite(value):
        return None
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def is_reason_key(key: Any) -> bool:
    """Whether ``key`` names the reason field of a null value (``<key>_nonfinite``), not a value of its own."""
    return isinstance(key, str) and key.endswith(NONFINITE)


def _reasons(value: Any) -> Any:
    """Where ``value`` (a number or a list) is non-finite: its reason, a list of reasons (None where an item is
    finite or a dict, which carries its own reason fields), or None when nothing in it is."""
    if isinstance(value, list | tuple):
        reasons = [_reasons(item) if not isinstance(item, Mapping) else None for item in value]
        return reasons if any(reason is not None for reason in reasons) else None
    return nonfinite_reason(value)


def finite_json(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, tuples, numbers...) that strict JSON can hold: each non-finite number
    becomes None, and a dict entry ``key`` holding one (directly or in a list) gets the sibling
    ``<key>_nonfinite``: the reason (``"inf"``, ``"-inf"``, ``"nan"``), or for a list the list of reasons, None
    where the item is finite. ``{"truth_ratio": inf}`` -> ``{"truth_ratio": None, "truth_ratio_nonfinite": "inf"}``;
    ``{"losses": [1.0, nan]}`` -> ``{"losses": [1.0, None], "losses_nonfinite": [None, "nan"]}``. A non-finite
    number outside a dict (``[inf]``) becomes None with no reason. NumPy floats become Python floats."""
    if isinstance(value, Mapping):
        cleaned: dict[Any, Any] = {}
        for key, item in value.items():
            cleaned[key] = finite_json(item)
            reason = _reasons(item)
            if reason is not None and isinstance(key, str):
                cleaned[f"{key}{NONFINITE}"] = reason
        return cleaned
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return float(value) if math.isfinite(value) else None
    return value


def restored(record: Mapping[str, Any], key: str) -> Any:
    """``record[key]`` as it was before :func:`finite_json`: a null with a reason is the float it stood for
    (``inf``, ``-inf``, ``nan``); anything else (a number, a null without a reason, a list) as it is. Also reads
    files of older versions, whose parsers gave ``Infinity`` as the float itself. KeyError when ``key`` is absent."""
    value, reason = record[key], record.get(f"{key}{NONFINITE}")
    if value is None and reason in NONFINITE_VALUES:
        return float(reason)
    return value


def dumps_strict(
    value: Any, indent: int | None = None, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """``value`` as strict JSON text (UTF-8 characters kept): non-finite numbers as null with their reason
    (:func:`finite_json`), and a ValueError, never ``NaN`` or ``Infinity``, for anything that still is one (say
    from ``default``)."""
    return json.dumps(
        finite_json(value), indent=indent, sort_keys=sort_keys, default=default, ensure_ascii=False, allow_nan=False
    )


def jsonl_strict(records: Iterable[Any]) -> str:
    """JSON lines: each record as one line of strict JSON (:func:`dumps_strict`), each line ending in a newline."""
    return "".join(dumps_strict(record) + "\n" for record in records)


def write_json_strict(
    path: str | Path,
    value: Any,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write ``value`` to ``path`` as strict JSON (:func:`dumps_strict`, indented, ending in a newline), through a
    ``.partial`` file renamed over it: a crash leaves the previous file whole, never half of the new one."""
    path = Path(path)
    text = dumps_strict(value, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def loads_strict(text: str) -> Any:
    """Parse JSON as strict parsers do (browsers, jq): a ValueError on ``NaN``, ``Infinity`` or ``-Infinity``,
    which Python's ``json.loads`` would accept."""
    return json.loads(text, parse_constant=_refuse_constant)
