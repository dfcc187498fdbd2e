"""Read and write an evaluation folder: ``<task>.jsonl`` (one record per sample) and ``summary.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from unlearn.errors import UsageError

SUMMARY = "summary.json"
TRUTH_RATIO_TASK = "forget_caption"


def write_records(out: Path, task: str, records: list[dict[str, Any]]) -> Path:
    """Write ``out/<task>.jsonl``, one JSON object per line."""
    path = out / f"{task}.jsonl"
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def read_records(run_dir: str | Path, task: str) -> list[dict[str, Any]]:
    """The per-sample records of ``task`` in an evaluation folder."""
    path = Path(run_dir) / f"{task}.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found: evaluate with the {task} task first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` as indented JSON, through a ``.partial`` file renamed over it: a crash leaves the
    previous file whole, never half of the new one."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


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


def truth_ratios(run_dir: str | Path) -> np.ndarray:
    """The per-sample truth ratios ``R_i`` of the forget captions, read back from ``forget_caption.jsonl``."""
    return np.array([record["truth_ratio"] for record in read_records(run_dir, TRUTH_RATIO_TASK)], dtype=np.float64)
