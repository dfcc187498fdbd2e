"""Read and write an evaluation folder: ``<task>.jsonl`` (one record per sample) and ``summary.json``.

Both are written as strict JSON (:func:`unlearn.figures.dumps_strict`): a non-finite number, such as a truth ratio
``R = exp(log R)`` that overflowed (``log R > 709.78``), is ``null`` beside a ``<key>_nonfinite`` field (``"inf"``,
``"-inf"``, ``"nan"``); the records keep ``log_truth_ratio`` beside it, finite for finite losses. Records in memory
keep the float itself; :func:`truth_ratio_of` and :func:`log_truth_ratio_of` read either form, and the files of
older versions, which held ``Infinity``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unlearn.errors import UsageError
from unlearn.figures import jsonl_strict, restored, write_json_strict

SUMMARY = "summary.json"
TRUTH_RATIO_TASK = "forget_caption"


def write_records(out: Path, task: str, records: list[dict[str, Any]]) -> Path:
    """Write ``out/<task>.jsonl``, one strict JSON object per line (non-finite numbers as null with a reason)."""
    path = out / f"{task}.jsonl"
    path.write_text(jsonl_strict(records), encoding="utf-8")
    return path


def read_records(run_dir: str | Path, task: str) -> list[dict[str, Any]]:
    """The per-sample records of ``task`` in an evaluation folder."""
    path = Path(run_dir) / f"{task}.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found: evaluate with the {task} task first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` as indented strict JSON, through a ``.partial`` file renamed over it: a crash leaves
    the previous file whole, never half of the new one (:func:`unlearn.figures.write_json_strict`)."""
    return write_json_strict(path, data)


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    """Write ``out/summary.json``."""
    return write_json(out / SUMMARY, summary)


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of an evaluation folder."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        raise UsageError(f"{path} not found: not an evaluation output folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc


def truth_ratio_of(record: Mapping[str, Any]) -> float:
    """A record's truth ratio ``R``: ``truth_ratio``, or where that is null the value its reason names (``inf``,
    ``-inf``, ``nan``); without a reason, ``exp(log_truth_ratio)`` (``inf`` beyond float range), else NaN."""
    value = restored(record, "truth_ratio")
    if value is None and record.get("log_truth_ratio") is not None:
        try:
            return math.exp(float(record["log_truth_ratio"]))
        except OverflowError:
            return math.inf
    return math.nan if value is None else float(value)


def log_truth_ratio_of(record: Mapping[str, Any]) -> float:
    """A record's ``log R``: ``log_truth_ratio`` (null with a reason: ``inf``, ``-inf``, ``nan``); records of older
    versions, without it, give ``log(truth_ratio)`` (``inf`` for an infinite ratio, ``-inf`` for 0)."""
    if "log_truth_ratio" in record:
        value = restored(record, "log_truth_ratio")
        return math.nan if value is None else float(value)
    ratio = truth_ratio_of(record)
    return math.log(ratio) if ratio > 0 else -math.inf if ratio == 0 else math.nan


def truth_ratios_of(records: list[dict[str, Any]]) -> np.ndarray:
    """The truth ratios ``R_i`` of ``records`` (in memory or read back), infinite ones as ``inf``
    (:func:`truth_ratio_of`): what the forget-quality KS test and histograms compare."""
    return np.array([truth_ratio_of(record) for record in records], dtype=np.float64)


def truth_ratios(run_dir: str | Path) -> np.ndarray:
    """The per-sample truth ratios ``R_i`` of the forget captions, read back from ``forget_caption.jsonl``
    (:func:`truth_ratios_of`: a null ratio with reason ``inf`` is ``inf`` again)."""
    return truth_ratios_of(read_records(run_dir, TRUTH_RATIO_TASK))
