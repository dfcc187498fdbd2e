"""Evaluation runs as read back from their folders, named by folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.logs import read_summary
from eval.tasks import TASKS
from unlearn.errors import UsageError
from unlearn.figures import NONFINITE, NONFINITE_VALUES, is_task_figure


@dataclass(frozen=True)
class Run:
    """One evaluation folder: its name (the folder's), path and ``summary.json``."""

    name: str
    path: Path
    summary: dict[str, Any]

    def task_figures(self) -> dict[str, float | None]:
        """Every per-task figure as ``task/figure`` -> value (numbers only: no intervals, no sample counts), and None
        for a figure written as null beside its ``<figure>_nonfinite`` reason (:meth:`reason`)."""
        figures: dict[str, float | None] = {}
        for task in TASKS:
            for figure, value in (self.summary.get(task) or {}).items():
                if is_task_figure(figure, value) or self.reason(f"{task}/{figure}") is not None:
                    figures[f"{task}/{figure}"] = value
        return figures

    def reason(self, key: str) -> str | None:
        """Why a headline figure (``forget``) or a task figure (``forget_face/...``) is null: ``inf``, ``-inf`` or
        ``nan``, from its ``<figure>_nonfinite`` field; None for a figure that is a number or absent."""
        task, _, figure = key.rpartition("/")
        values = (self.summary.get(task) or {}) if task else self.summary
        if not isinstance(values, dict) or values.get(figure, 0) is not None:
            return None
        reason = values.get(f"{figure}{NONFINITE}")
        return reason if reason in NONFINITE_VALUES else None

    def interval(self, key: str) -> list[float] | None:
        """The 95% interval ``[low, high]`` of a headline figure (``forget``) or a task figure (``forget_face/...``)."""
        task, _, figure = key.rpartition("/")
        values = (self.summary.get(task) or {}) if task else self.summary
        interval = values.get(f"{figure}_ci")
        return interval if isinstance(interval, list) and len(interval) == 2 else None

    @property
    def precision(self) -> str:
        """The precision the model was evaluated in: ``4bit``, ``8bit`` or ``full``."""
        return (self.summary.get("config") or {}).get("quantization") or "full"


def run_from_summary(path: str | Path, summary: dict[str, Any]) -> Run:
    """A run named by its folder, from a summary already in memory."""
    return Run(Path(path).resolve().name, Path(path), summary)


def load_runs(dirs: list[str] | list[Path]) -> list[Run]:
    """Read the runs' ``summary.json``; each run is named by its folder (with its parent when two names clash)."""
    if not dirs:
        raise UsageError("give at least one evaluation folder")
    paths = [Path(d).resolve() for d in dirs]
    names = [p.name for p in paths]
    names = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [Run(name, path, read_summary(path)) for name, path in zip(names, paths, strict=True)]


def task_columns(runs: list[Run]) -> list[str]:
    """The ``task/figure`` columns present in any run, in task order."""
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.task_figures()))
    return [column for task in TASKS for column in seen if column.startswith(f"{task}/")]
